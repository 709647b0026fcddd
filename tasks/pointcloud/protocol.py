"""The rotation protocol: which rotations are applied to clouds in training and at test.

Modes: ``"none"`` (the dataset's pose), ``"z"`` (a uniform rotation about the dataset's up axis) and
``"so3"`` (a Haar-uniform rotation). Training rotations are drawn from the global generator (reseeded per
epoch by the task); evaluation rotations are a function of ``(seed, sample index, repeat)`` only, so every
model sees exactly the same rotated test shapes, whatever the batch size or the number of processes.
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import torch
from torch import Tensor

from visionkit.ops.rotations import axis_rotation, random_rotation, rotate_points

#: rotation protocols: none, about the up axis, or any rotation
Rotation = Literal["none", "z", "so3"]
MODES = get_args(Rotation)


def check_mode(mode: str, key: str) -> str:
    if mode not in MODES:
        raise ValueError(f"{key}: expected one of {', '.join(MODES)}, got {mode!r}")
    return mode


def protocol_rotations(mode: str, n: int, up_axis: str = "z", generator: torch.Generator | None = None,
                       dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """``n`` rotations ``(n, 3, 3)`` of the given mode; ``"z"`` turns about ``up_axis`` (``x``, ``y`` or ``z``)."""
    if mode == "none":
        return torch.eye(3, dtype=dtype, device=device).expand(n, 3, 3).clone()
    if mode == "z":
        angle = torch.rand(n, generator=generator, dtype=torch.float64) * (2 * math.pi)
        return axis_rotation(angle, up_axis).to(dtype=dtype, device=device)
    if mode == "so3":
        return random_rotation(n, generator=generator, dtype=dtype, device=device)
    raise ValueError(f"rotation mode must be one of {MODES}, got {mode!r}")


def seeded_rotations(mode: str, keys: Tensor, repeat: int = 0, seed: int = 0, up_axis: str = "z",
                     dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """One rotation per sample ``(B, 3, 3)``, a pure function of ``(seed, key, repeat)``.

    Args:
        keys: ``(B,)`` sample indices in their dataset.
        repeat: index of the test rotation (several are averaged per shape).
    """
    if mode == "none":
        return protocol_rotations("none", len(keys), dtype=dtype, device=device)
    g = torch.Generator()
    out = []
    for key in keys.tolist():  # one tiny generator per shape, not per point
        g.manual_seed((int(seed) * 1_000_003 + int(key)) * 101 + int(repeat))
        out.append(protocol_rotations(mode, 1, up_axis, g, dtype=torch.float64))
    return torch.cat(out).to(dtype=dtype, device=device)


def rotate_batch(batch: dict[str, Any], R: Tensor) -> dict[str, Any]:
    """A shallow copy of ``batch`` with ``points`` (and ``normals``) rotated by ``R (B, 3, 3)``."""
    out = dict(batch)
    out["points"] = rotate_points(batch["points"], R.to(batch["points"]))
    if torch.is_tensor(batch.get("normals")):
        out["normals"] = rotate_points(batch["normals"], R.to(batch["normals"]))
    return out


def sample_keys(batch: dict[str, Any], batch_idx: int) -> Tensor:
    """The dataset indices of a batch (key ``index``), else positions derived from the batch index."""
    if torch.is_tensor(batch.get("index")):
        return batch["index"].long().cpu()
    B = batch["points"].shape[0]
    return torch.arange(B) + batch_idx * 1_000_000
