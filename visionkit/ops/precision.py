"""Geometry that stays in float32 under mixed precision.

``torch.autocast`` (``--trainer.precision bf16-mixed`` or ``16-mixed``) runs matrix products in bfloat16 /
float16: 8 (resp. 11) significant bits. That is fine for a network's features but not for geometry whose
result must be exact: squared distances that pick the nearest neighbours, rotation matrices, frames and the
coordinates an equivariant layer moves around. :func:`float32_ops` makes a function compute in float32 inside
autocast, so its results equal those of a float32 run up to float32 rounding.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor

__all__ = ["LOW_PRECISION", "float32_ops"]

LOW_PRECISION = (torch.float16, torch.bfloat16)

F = TypeVar("F", bound=Callable[..., Any])


def _map(obj: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    if torch.is_tensor(obj):
        return fn(obj)
    if isinstance(obj, tuple):
        return type(obj)(*(_map(o, fn) for o in obj)) if hasattr(obj, "_fields") else tuple(_map(o, fn) for o in obj)
    if isinstance(obj, list):
        return [_map(o, fn) for o in obj]
    if isinstance(obj, dict):
        return {k: _map(v, fn) for k, v in obj.items()}
    return obj


def _tensors(obj: Any) -> list[Tensor]:
    found: list[Tensor] = []
    _map(obj, lambda t: found.append(t) or t)
    return found


def float32_ops(fn: F) -> F:
    """Decorator: run ``fn`` in float32 when autocast is on or when a floating argument is float16/bfloat16.

    * Inside ``torch.autocast`` on the arguments' device: autocast is switched off for the call, float16 and
      bfloat16 arguments are cast to float32 (float32/float64 ones are kept), and the results are returned as
      computed (float32), as autocast itself does for the operations it keeps in float32.
    * Outside autocast with float16/bfloat16 arguments: computed in float32, floating results cast back to the
      lowest-precision argument's dtype (so a model kept in bfloat16 sees bfloat16).
    * Otherwise ``fn`` runs unchanged (no copy, no cost).

    Tensors inside tuple, list and dict arguments are handled too; gradients flow through the casts.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        floats = [t for t in _tensors((args, kwargs)) if t.is_floating_point()]
        if not floats:
            return fn(*args, **kwargs)
        device_type = floats[0].device.type
        autocast = torch.is_autocast_enabled(device_type)
        low = [t.dtype for t in floats if t.dtype in LOW_PRECISION]
        if not autocast and not low:
            return fn(*args, **kwargs)

        def up(t: Tensor) -> Tensor:
            return t.float() if t.dtype in LOW_PRECISION else t

        with torch.autocast(device_type, enabled=False):
            out = fn(*_map(args, up), **_map(kwargs, up))
        if autocast:
            return out
        return _map(out, lambda t: t.to(low[0]) if t.is_floating_point() else t)

    return wrapper  # type: ignore[return-value]
