"""Baselines of the motion family."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ConstantVelocity(nn.Module):
    """Extrapolate the last observed velocity: ``x_{T+t} = x_T + t (x_T − x_{T−1})``.

    Args:
        future_len: predicted frames ``T_f``.
    """

    def __init__(self, future_len: int = 20) -> None:
        super().__init__()
        self.future_len = future_len

    def forward(self, past: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """Args: past ``(B, A, T_p, D)`` with ``T_p >= 2``; mask ``(B, A)``. Returns ``future (B, A, T_f, D)``."""
        last, vel = past[:, :, -1:], past[:, :, -1:] - past[:, :, -2:-1]
        t = torch.arange(1, self.future_len + 1, dtype=past.dtype, device=past.device)[:, None]
        future = last + t * vel
        if mask is not None:
            future = future * mask[..., None, None].to(past.dtype)
        return {"future": future}
