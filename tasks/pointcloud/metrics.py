"""Point-cloud metrics: mean class accuracy, ShapeNetPart instance and class mIoU, repeated-rotation accuracy.

Every state is a sum reduced with ``dist_reduce_fx="sum"``, so the values are exact under DDP (each process
adds its own shapes; duplicated samples of a padded distributed sampler are counted like any other sample).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric


def _labels(preds: Tensor) -> Tensor:
    """Logits/probabilities ``(..., C)`` -> labels ``(...)``; labels pass through."""
    return preds.argmax(-1) if preds.is_floating_point() else preds


class _ConfusionMetric(Metric):
    """Accumulates a ``(C, C)`` confusion matrix (rows: truth, columns: prediction)."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, num_classes: int, ignore_index: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.add_state("confmat", torch.zeros(self.num_classes, self.num_classes, dtype=torch.long),
                       dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Args: preds ``(...)`` labels or ``(..., C)`` scores; target ``(...)`` labels in ``[0, C)``."""
        p = _labels(preds).reshape(-1).long()
        t = target.reshape(-1).long()
        if self.ignore_index is not None:
            keep = t != self.ignore_index
            p, t = p[keep], t[keep]
        if t.numel() and (t.min() < 0 or t.max() >= self.num_classes):
            raise ValueError(f"{type(self).__name__}: target labels must lie in [0, {self.num_classes})")
        C = self.num_classes
        self.confmat += torch.bincount(t * C + p.clamp(0, C - 1), minlength=C * C).reshape(C, C)


class MeanClassAccuracy(_ConfusionMetric):
    """Mean over classes of per-class recall ``cm[c, c] / sum_j cm[c, j]``; classes absent from the truth are skipped.

    This is the point-cloud literature's mAcc (scikit-learn's balanced accuracy). It is kept beside torchmetrics:
    ``MulticlassAccuracy(average="macro")`` counts a class that is predicted but absent from the truth as 0,
    which lowers the figure on small or unbalanced evaluation sets. Overall accuracy is torchmetrics'
    ``MulticlassAccuracy(average="micro")``.

    Args:
        num_classes: number of labels ``C``.
        ignore_index: target label to skip.
    """

    higher_is_better = True

    def compute(self) -> Tensor:
        cm = self.confmat.double()
        support = cm.sum(1)
        present = support > 0
        if not present.any():
            return torch.tensor(0.0)
        return (cm.diagonal()[present] / support[present]).mean().float()


class ShapeNetPartMIoU(Metric):
    """ShapeNetPart part-segmentation mIoU with the standard protocol.

    For each shape, IoU is computed for every part of its category (a part absent in both prediction and truth
    counts as IoU 1) and averaged into the shape IoU. ``instance_mIoU`` is the mean shape IoU over all shapes;
    ``class_mIoU`` is the mean over categories (present in the data) of their mean shape IoU.

    Args:
        category_parts: for each category, the global part ids that belong to it
            (e.g. ShapeNetPart's 16 categories over 50 parts).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, category_parts: Sequence[Sequence[int]], **kwargs) -> None:
        super().__init__(**kwargs)
        self.category_parts = [list(map(int, p)) for p in category_parts]
        n_parts = max(max(p) for p in self.category_parts) + 1
        mask = torch.zeros(len(self.category_parts), n_parts, dtype=torch.bool)
        for c, parts in enumerate(self.category_parts):
            mask[c, parts] = True
        self.register_buffer("part_mask", mask, persistent=False)
        self.num_parts = n_parts
        n_cat = len(self.category_parts)
        self.add_state("iou_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("shape_count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("cat_iou_sum", torch.zeros(n_cat, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("cat_count", torch.zeros(n_cat, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, category: Tensor) -> None:
        """Args: preds ``(B, N)`` part ids or ``(B, N, P)`` scores; target ``(B, N)``; category ``(B,)``."""
        p, t = _labels(preds).long(), target.long()
        P = self.num_parts
        p_oh = torch.nn.functional.one_hot(p.clamp(0, P - 1), P).bool()  # (B, N, P)
        t_oh = torch.nn.functional.one_hot(t, P).bool()
        inter = (p_oh & t_oh).sum(1).double()  # (B, P)
        union = (p_oh | t_oh).sum(1).double()
        iou = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
        mask = self.part_mask.to(p.device)[category.long()]  # (B, P)
        shape_iou = (iou * mask).sum(1) / mask.sum(1).clamp_min(1)  # (B,)
        self.iou_sum += shape_iou.sum()
        self.shape_count += shape_iou.numel()
        self.cat_iou_sum.index_add_(0, category.long(), shape_iou)
        self.cat_count += torch.bincount(category.long(), minlength=len(self.category_parts))

    def compute(self) -> dict[str, Tensor]:
        instance = self.iou_sum / self.shape_count.clamp_min(1)
        present = self.cat_count > 0
        per_cat = self.cat_iou_sum[present] / self.cat_count[present]
        cls = per_cat.mean() if present.any() else torch.zeros((), dtype=torch.float64)
        return {"instance_mIoU": instance.float(), "class_mIoU": cls.float()}


class RepeatedAccuracy(Metric):
    """Accuracy of each of ``R`` repeated evaluations (e.g. seeded test rotations); reports their mean and std.

    Args:
        repeats: number of repeated evaluations ``R``.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, repeats: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.repeats = int(repeats)
        self.add_state("correct", torch.zeros(self.repeats, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(self.repeats, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, repeat: int) -> None:
        """Args: preds ``(...)`` labels or ``(..., C)`` scores; target ``(...)``; repeat index in ``[0, R)``."""
        self.correct[repeat] += (_labels(preds) == target).sum()
        self.total[repeat] += target.numel()

    def compute(self) -> dict[str, Tensor]:
        acc = self.correct.double() / self.total.clamp_min(1)
        std = acc.std(unbiased=False) if self.repeats > 1 else torch.zeros((), dtype=torch.float64)
        return {"mean": acc.mean().float(), "std": std.float()}


__all__ = ["MeanClassAccuracy", "RepeatedAccuracy", "ShapeNetPartMIoU"]
