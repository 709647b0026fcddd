"""PointOBB's losses: MIL bags, negatives, scale-sensitive consistency (SSC) and symmetry-based angle learning.

Each function takes the :class:`~visionkit.tasks.obb.pointobb.PointOBB` model and the
:class:`~visionkit.tasks.obb.pointobb.PointOBBOutputs` of one :meth:`~visionkit.tasks.obb.pointobb.PointOBB.run`;
the weights are the task's arguments of the same meaning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from visionkit.tasks.obb import pointobb_views as V
from visionkit.tasks.obb.coders import wrap_le90

if TYPE_CHECKING:
    from visionkit.tasks.obb.pointobb import PointOBB, PointOBBOutputs
    from visionkit.tasks.obb.pointobb_views import ViewParams

__all__ = ["mil_loss", "negatives_loss", "ssc_loss", "symmetry_loss"]


def mil_loss(cls: Tensor, ins: Tensor, onehot: Tensor) -> Tensor:
    """Binary cross-entropy of the bag scores ``sum_k cls * ins`` ``(N, C)`` against the point classes, summed
    over classes and averaged over points."""
    return F.binary_cross_entropy(_bag(cls, ins), onehot, reduction="sum") / onehot.shape[0]


def negatives_loss(m: PointOBB, out: PointOBBOutputs, batch_size: int, avoid_points: bool,
                   scale_factors: Sequence[float], weight: float, zero: Tensor) -> Tensor:
    """Focal loss (gamma 2) of negative boxes towards background: random boxes away from the stage-0 boxes (and
    the points with ``avoid_points``) and the stage-0 boxes scaled by ``scale_factors``; stage 1 always, stage 0
    too when it scores with sigmoids or a background class."""
    bidx, box0 = out.batch_idx, out.stage0.boxes.detach()
    neg_boxes, neg_b = m.negatives(box0, bidx, batch_size, out.image_size, points=out.points if avoid_points else None)
    if scale_factors:  # the stage-0 box shrunk / grown: an object's inside or its surroundings
        sb, sbi = m.scaled_negatives(box0, bidx, scale_factors)
        neg_boxes, neg_b = torch.cat([neg_boxes, sb.to(neg_boxes.dtype)]), torch.cat([neg_b, sbi])
    if not neg_boxes.shape[0]:
        return zero
    heads = [m.head0, m.head1] if (m.stage0_sigmoid or m.head0.background) else [m.head1]
    logits = [c for c, _ in m.roi_logits(heads, out.feats, neg_boxes, neg_b)]
    if m.head0.background:
        neg = _focal_negative(torch.sigmoid(logits[1])) + _focal_background(logits[0])
    else:
        neg = sum(_focal_negative(torch.sigmoid(c)) for c in logits)
    return neg * weight


def ssc_loss(m: PointOBB, out: PointOBBOutputs, images: Tensor, scale: float, cls_weight: float,
             ins_weight: float) -> Tensor:
    """Scale-sensitive consistency: the stage-0 bags scaled by ``scale`` in the image resized by ``scale`` give
    the same class and instance score distributions over the bag scales as the original view."""
    feats_s = m.features(V.resize_view(images, scale))
    s0 = out.stage0
    bags_s = s0.bags.clone()
    bags_s[..., :4] = bags_s[..., :4] * scale
    cls_s, ins_s, _ = m.mil_scores(m.head0, feats_s, bags_s, out.batch_idx, sigmoid=m.stage0_sigmoid, keep=s0.keep)
    lab = out.labels
    return cls_weight * _ssc(s0.cls, cls_s, lab, m.num_scales, m.num_ratios) + \
        ins_weight * _ssc(s0.ins, ins_s, lab, m.num_scales, m.num_ratios)


def symmetry_loss(m: PointOBB, out: PointOBBOutputs, images: Tensor, views: ViewParams, padding: str, beta: float,
                  weight: float, dense_weight: float, constraint_weight: float, zero: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetry-based angle learning: the angles at the points of the rotated (flipped) view equal the original
    ones turned (mirrored); with ``dense_weight`` the same relation at every cell of every level. Returns the
    symmetry loss and the coder's constraint loss of both views."""
    images_dtype, size, lab, bidx = images.dtype, out.image_size, out.labels, out.batch_idx
    base, amaps_o, theta_o, cons_o = images, out.angle_maps, out.theta, out.constraint  # theta (N, L)
    disc = padding == "disc"
    if disc:  # both views see the same disc of content: the frame of the image gives away no turn
        mask = V.disc_mask(size, images.device, images_dtype)  # (1, 1, H, W)
        fill = images.mean((2, 3), keepdim=True)
        base = images * mask + fill * (1 - mask)
        amaps_o = m.angle_maps(m.features(base), base)
        theta_o, _, cons_o = m.dense_to_sparse(amaps_o, out.points, bidx)
    if views.flip:
        img_v, kind, param = V.vflip_view(base), "vflip", 0.0
    else:
        pad = "zeros" if disc else padding
        img_v, kind, param = V.rotate_view(base, views.angle, pad), "rotate", views.angle
    if disc:
        img_v = img_v * mask + fill * (1 - mask)
    pts_v = V.transform_points(out.points, kind, size, param)
    amaps_v = m.angle_maps(m.features(img_v), img_v)
    theta_v, _, cons_v = m.dense_to_sparse(amaps_v, pts_v, bidx)
    d = theta_o + theta_v if views.flip else (theta_o - theta_v) - param
    d = wrap_le90(d)
    valid = V.inside_image(pts_v, size) & ~m.agnostic[lab]  # (N,)
    if disc:
        valid &= V.inside_disc(out.points, size)
    w = valid.to(d.dtype)[:, None].expand_as(d)
    sym = (_smooth_l1(d, beta) * w).sum() / w.sum().clamp_min(1.0) * weight
    if dense_weight > 0:  # the same relation at every cell of every level
        th_o, th_v, ok = m.dense_view_angles(amaps_o, amaps_v, kind, param, size)
        dense = zero
        for a, b, v in zip(th_o, th_v, ok):
            dd = wrap_le90(a + b if views.flip else (a - b) - param)
            dense = dense + (_smooth_l1(dd, beta) * v).sum() / (v.sum() * dd.shape[0]).clamp_min(1)
        sym = sym + dense / len(th_o) * dense_weight
    con = ((cons_o + cons_v) * w).sum() / w.sum().clamp_min(1.0) * constraint_weight
    return sym, con


def _smooth_l1(x: Tensor, beta: float) -> Tensor:
    ax = x.abs()
    return torch.where(ax < beta, 0.5 * ax * ax / beta, ax - 0.5 * beta) if beta > 0 else ax


def _focal_negative(p: Tensor) -> Tensor:
    """Focal loss (gamma 2) of sigmoid scores ``(M, C)`` towards background, summed over classes, averaged."""
    return -(p.pow(2) * torch.log((1 - p).clamp_min(1e-6))).sum(1).mean()


def _focal_background(logits: Tensor) -> Tensor:
    """Focal loss (gamma 2) of the background column (last) of a softmax ``(M, C + 1)``, averaged."""
    logp = torch.log_softmax(logits, -1)[:, -1]
    return -((1 - logp.exp()).pow(2) * logp).mean()


def _bag(cls: Tensor, ins: Tensor) -> Tensor:
    """Bag scores ``(N, C)`` = ``sum_k cls * ins`` clamped into ``(0, 1)`` for the cross-entropy."""
    return (cls * ins).sum(1).clamp(1e-6, 1 - 1e-6)


def _ssc(a: Tensor, b: Tensor, labels: Tensor, num_scales: int, num_ratios: int) -> Tensor:
    """``1 - cos`` between the point-class score distributions of two views, per scale group (the column of one
    aspect ratio across the scales), averaged. ``a, b``: ``(N, S*R, C)`` scale-major."""
    idx = labels[:, None, None].expand(-1, a.shape[1], 1)
    va = a.gather(2, idx).view(-1, num_scales, num_ratios)
    vb = b.gather(2, idx).view(-1, num_scales, num_ratios)
    return (1 - F.cosine_similarity(va, vb, dim=1, eps=1e-8)).mean()
