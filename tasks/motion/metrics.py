"""Trajectory metrics: ADE, FDE, MSE, best-of-K minADE/minFDE and MPJPE per prediction horizon.

All states are sums and counts reduced with ``dist_reduce_fx="sum"``, so every value is exact under DDP: each
process adds its own agents and the totals are divided once after the reduction.

Shapes: predictions and targets ``(B, A, T, D)`` (batch, agents, future frames, dims), multi-modal predictions
``(B, K, A, T, D)``, agent mask ``(B, A)`` bool (absent agents are ignored).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric


def _check(preds: Tensor, target: Tensor, mask: Tensor | None, name: str) -> Tensor:
    if preds.shape[-3:] != target.shape[-3:] or preds.shape[0] != target.shape[0] or preds.dim() not in (4, 5):
        raise ValueError(f"{name}: prediction {tuple(preds.shape)} does not match target {tuple(target.shape)}")
    if mask is None:
        return torch.ones(target.shape[:2], dtype=torch.bool, device=target.device)
    if mask.shape != target.shape[:2]:
        raise ValueError(f"{name}: mask {tuple(mask.shape)} must be (B, A) = {tuple(target.shape[:2])}")
    return mask.bool()


def displacement(preds: Tensor, target: Tensor) -> Tensor:
    """Euclidean distance per frame ``(..., A, T)`` between ``(..., A, T, D)`` trajectories."""
    return (preds - target).norm(dim=-1)


class _AgentMean(Metric):
    """Mean over valid agents of a per-agent error; subclasses define :meth:`per_agent`."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def per_agent(self, preds: Tensor, target: Tensor) -> Tensor:  # (B, A)
        raise NotImplementedError

    def update(self, preds: Tensor, target: Tensor, mask: Tensor | None = None) -> None:
        """Args: preds ``(B, A, T, D)`` (or ``(B, K, A, T, D)`` for best-of-K), target ``(B, A, T, D)``,
        mask ``(B, A)`` bool."""
        m = _check(preds, target, mask, type(self).__name__)
        err = self.per_agent(preds.detach(), target)
        self.total += err[m].double().sum()
        self.count += m.sum()

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp_min(1)).float()


class ADE(_AgentMean):
    """Average displacement error: L2 distance averaged over future frames and valid agents."""

    def per_agent(self, preds: Tensor, target: Tensor) -> Tensor:
        return displacement(preds, target).mean(-1)


class FDE(_AgentMean):
    """Final displacement error: L2 distance at the last future frame, averaged over valid agents."""

    def per_agent(self, preds: Tensor, target: Tensor) -> Tensor:
        return displacement(preds[..., -1, :], target[..., -1, :])


class MSE(_AgentMean):
    """Mean squared error per coordinate (the N-body convention), averaged over frames, dims and valid agents."""

    def per_agent(self, preds: Tensor, target: Tensor) -> Tensor:
        return ((preds - target) ** 2).mean((-1, -2))


class MinADE(_AgentMean):
    """Best-of-K ADE: per agent, the smallest ADE among the ``K`` predicted modes ``(B, K, A, T, D)``.

    A single-mode prediction ``(B, A, T, D)`` is accepted (then equal to :class:`ADE`).

    Args:
        k: number of modes used (the first ``k``); ``None`` uses all.
    """

    def __init__(self, k: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.k = k

    def _modes(self, preds: Tensor, target: Tensor) -> Tensor:
        if preds.dim() == target.dim():
            preds = preds.unsqueeze(1)
        return preds[:, : self.k] if self.k is not None else preds

    def per_agent(self, preds: Tensor, target: Tensor) -> Tensor:
        return displacement(self._modes(preds, target), target.unsqueeze(1)).mean(-1).amin(1)


class MinFDE(MinADE):
    """Best-of-K FDE: per agent, the smallest final-frame error among the ``K`` modes."""

    def per_agent(self, preds: Tensor, target: Tensor) -> Tensor:
        p = self._modes(preds, target)
        return displacement(p[..., -1, :], target.unsqueeze(1)[..., -1, :]).amin(1)


class MPJPEHorizons(Metric):
    """Mean per-joint position error at fixed horizons (ms after the last observed frame).

    The horizon ``h`` ms is future frame ``round(h * fps / 1000)`` (1-based), i.e. index ``round(h*fps/1000)-1``;
    horizons beyond the predicted length are reported as NaN. Agents are joints here.

    Args:
        horizons_ms: horizons in milliseconds.
        fps: frame rate of the sequences.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, horizons_ms: Sequence[int] = (80, 160, 320, 400, 560, 1000), fps: float = 25.0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.horizons_ms = [int(h) for h in horizons_ms]
        self.frames = [max(1, round(h * fps / 1000.0)) - 1 for h in self.horizons_ms]
        n = len(self.horizons_ms)
        self.add_state("total", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, mask: Tensor | None = None) -> None:
        """Args: preds, target ``(B, A, T, D)``; mask ``(B, A)`` bool."""
        m = _check(preds, target, mask, type(self).__name__)
        T = target.shape[2]
        err = displacement(preds.detach(), target)  # (B, A, T)
        idx = torch.tensor(self.frames, device=target.device)
        ok = idx < T
        if not ok.any():
            return
        sel = err[:, :, idx.clamp_max(T - 1)]  # (B, A, H)
        mf = m[..., None].to(sel.dtype)
        self.total += torch.where(ok, (sel * mf).sum((0, 1)), 0).double()
        self.count += torch.where(ok, mf.sum((0, 1)).expand(len(self.frames)), 0).double()

    def compute(self) -> dict[str, Tensor]:
        vals = torch.where(self.count > 0, self.total / self.count.clamp_min(1), torch.nan).float()
        return {f"MPJPE_{h}ms": v for h, v in zip(self.horizons_ms, vals)}
