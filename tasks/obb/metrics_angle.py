"""``MeanAngleError``: mean absolute angle error (degrees) of detections matched to ground-truth boxes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from visionkit.ops.rotated_boxes import box_iou_rotated

__all__ = ["MeanAngleError", "angle_difference"]


def angle_difference(a: Tensor, b: Tensor) -> Tensor:
    """Absolute difference of box angles modulo pi (a box is symmetric under a half turn), in ``[0, pi/2]``."""
    d = torch.remainder(a - b + math.pi / 2, math.pi) - math.pi / 2
    return d.abs()


class MeanAngleError(Metric):
    """Mean angle error of matched boxes, in degrees.

    Every ground-truth box (difficult ones excluded when ``ignore_difficult``) is matched to the highest-scoring
    detection of its class whose rotated IoU with it exceeds ``iou_threshold``; the error is the angle difference
    modulo pi. Ground-truth boxes without such a detection do not count (recall is the mAP's business). The sums
    are reduced over processes, so the value is right under DDP.

    Args:
        iou_threshold: IoU a detection must exceed to match.
        ignore_difficult: skip ground-truth boxes flagged ``difficult``.
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, iou_threshold: float = 0.5, ignore_difficult: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.iou_threshold = iou_threshold
        self.ignore_difficult = ignore_difficult
        self.add_state("error_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("matched", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Sequence[dict[str, Tensor]], targets: Sequence[dict[str, Tensor]]) -> None:
        """Add a batch.

        Args:
            preds: per image ``boxes (K, 5)``, ``scores (K,)``, ``labels (K,)``.
            targets: per image ``boxes (N, 5)``, ``labels (N,)``, optional ``difficult (N,)``.
        """
        for p, t in zip(preds, targets):
            gt, gl = t["boxes"].to(self.error_sum.device), t["labels"].to(self.error_sum.device)
            if self.ignore_difficult and t.get("difficult") is not None:
                keep = ~t["difficult"].to(gt.device).bool()
                gt, gl = gt[keep], gl[keep]
            pb = p["boxes"].to(gt)
            if gt.shape[0] == 0 or pb.shape[0] == 0:
                continue
            iou = box_iou_rotated(pb.double(), gt.double())  # (K, N)
            ok = (iou > self.iou_threshold) & (p["labels"].to(gl)[:, None] == gl[None, :])
            score = torch.where(ok, p["scores"].to(iou)[:, None], torch.full_like(iou, -math.inf))
            best = score.argmax(0)  # (N,) best-scoring valid detection per ground-truth box
            has = ok.any(0)
            err = angle_difference(pb[best[has], 4].double(), gt[has, 4].double())
            self.error_sum += torch.rad2deg(err).sum()
            self.matched += int(has.sum())

    def compute(self) -> Tensor:
        if self.matched == 0:
            return torch.tensor(float("nan"))
        return (self.error_sum / self.matched).float()
