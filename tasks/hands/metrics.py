"""Hand reconstruction metrics in mm: MPJPE, PA-MPJPE, MPVPE, MRRPE (sum/count states, exact under DDP).

Joints follow the InterHand order (21 per hand, wrist last; right 0-20, left 21-41). Every metric takes the
final prediction by default or, with ``iteration=k``, the ``k``-th estimate of ``pred_iterations`` (0 is the
initial estimate), so a ``MetricCollection`` can report each refinement iteration next to the final result.
All ``update`` methods take keyword arguments; a ``MetricCollection`` hands each metric the ones it declares.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

_ROOT = 20


def _per_hand(x: Tensor) -> Tensor:
    """``(B, 21 H, 3)`` -> ``(B, H, 21, 3)``."""
    return x.reshape(x.shape[0], -1, 21, x.shape[-1])


def procrustes_align(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Similarity-align ``pred`` to ``target`` (rotation, isotropic scale, translation; no reflection).

    Solves ``min_{s,R,t} sum_i w_i |s R p_i + t - x_i|^2`` in closed form (Umeyama): SVD of the weighted
    cross-covariance, with the sign of the last singular direction flipped when ``det(U V^T) < 0``.

    Args:
        pred, target: ``(..., N, 3)``.
        weight: ``(..., N)`` point weights (e.g. validity), uniform if None.

    Returns:
        aligned ``pred`` ``(..., N, 3)``.
    """
    if weight is None:
        weight = torch.ones(pred.shape[:-1], dtype=pred.dtype, device=pred.device)
    w = weight[..., None] / weight.sum(-1, keepdim=True)[..., None].clamp_min(1e-12)  # (..., N, 1)
    mu_p, mu_x = (w * pred).sum(-2, keepdim=True), (w * target).sum(-2, keepdim=True)
    p, x = pred - mu_p, target - mu_x
    cov = (x * w).transpose(-1, -2) @ p  # (..., 3, 3) = sum w x p^T
    U, S, Vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(U @ Vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    D = torch.ones_like(S)
    D[..., -1] = d
    R = U @ (D[..., None] * Vh)
    var_p = (w * p * p).sum((-1, -2))
    s = (S * D).sum(-1) / var_p.clamp_min(1e-12)
    return s[..., None, None] * p @ R.transpose(-1, -2) + mu_x


class _HandMetric(Metric):
    """Base: accumulates a sum of errors (mm) and a count; ``iteration`` picks an estimate."""

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, iteration: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.iteration = iteration
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def _pick(self, final: Tensor | None, iterations: Sequence[Tensor] | None) -> Tensor | None:
        if self.iteration is None:
            return final
        if iterations is None or self.iteration >= len(iterations):
            return None
        return iterations[self.iteration]

    def _add(self, err: Tensor, mask: Tensor) -> None:
        self.total += (err * mask).sum().double()
        self.count += mask.sum().double()

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp_min(1)).float()


class MPJPE(_HandMetric):
    """Mean per-joint position error after subtracting each hand's wrist (root-relative), mm.

    ``update(pred_joints (B, 42, 3), target_joints (B, 42, 3), joint_valid (B, 42), pred_iterations=None)``;
    a hand counts only where its wrist is valid.
    """

    def update(self, pred_joints: Tensor, target_joints: Tensor, joint_valid: Tensor,
               pred_iterations: Sequence[Tensor] | None = None) -> None:
        pred = self._pick(pred_joints, pred_iterations)
        if pred is None:
            return
        p, t, v = _per_hand(pred), _per_hand(target_joints), _per_hand(joint_valid[..., None])[..., 0]
        p = p - p[:, :, _ROOT : _ROOT + 1]
        t = t - t[:, :, _ROOT : _ROOT + 1]
        mask = v * v[:, :, _ROOT : _ROOT + 1]
        self._add((p - t).norm(dim=-1), mask)


class PAMPJPE(_HandMetric):
    """Per-joint error after per-hand Procrustes alignment (scale, rotation, translation; no reflection), mm."""

    def update(self, pred_joints: Tensor, target_joints: Tensor, joint_valid: Tensor,
               pred_iterations: Sequence[Tensor] | None = None) -> None:
        pred = self._pick(pred_joints, pred_iterations)
        if pred is None:
            return
        p, t = _per_hand(pred).double(), _per_hand(target_joints).double()
        v = _per_hand(joint_valid[..., None])[..., 0].double()
        has = v.sum(-1) >= 3  # Procrustes needs a few points
        aligned = procrustes_align(p, t, torch.where(has[..., None], v, torch.ones_like(v)))
        self._add((aligned - t).norm(dim=-1), v * has[..., None])


class MPVPE(_HandMetric):
    """Mean per-vertex position error of root-relative meshes, mm.

    ``update(pred_vertices (B, 2V, 3), target_vertices (B, 2V, 3), pred_joints, target_joints, hand_valid
    (B, 2))``: the vertices of each hand are taken relative to that hand's wrist joint.
    """

    def update(self, pred_vertices: Tensor, target_vertices: Tensor, pred_joints: Tensor, target_joints: Tensor,
               hand_valid: Tensor) -> None:
        B = pred_vertices.shape[0]
        pv = pred_vertices.reshape(B, 2, -1, 3) - _per_hand(pred_joints)[:, :, _ROOT : _ROOT + 1]
        tv = target_vertices.reshape(B, 2, -1, 3) - _per_hand(target_joints)[:, :, _ROOT : _ROOT + 1]
        err = (pv - tv).norm(dim=-1)  # (B, 2, V)
        self._add(err, hand_valid[..., None].expand_as(err).to(err.dtype))


class MRRPE(_HandMetric):
    """Mean relative-root position error: error of the right-to-left wrist vector, mm (both wrists valid)."""

    def update(self, pred_joints: Tensor, target_joints: Tensor, joint_valid: Tensor,
               pred_iterations: Sequence[Tensor] | None = None) -> None:
        pred = self._pick(pred_joints, pred_iterations)
        if pred is None:
            return
        r, l = _ROOT, 21 + _ROOT
        err = ((pred[:, l] - pred[:, r]) - (target_joints[:, l] - target_joints[:, r])).norm(dim=-1)
        self._add(err, joint_valid[:, l] * joint_valid[:, r])


__all__ = ["MPJPE", "MPVPE", "MRRPE", "PAMPJPE", "procrustes_align"]
