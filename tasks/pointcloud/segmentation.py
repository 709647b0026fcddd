"""Part segmentation under a rotation protocol (ShapeNetPart protocol: argmax within the shape's category)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from visionkit.tasks.pointcloud.classification import PointCloudClassificationTask
from visionkit.tasks.pointcloud.metrics import ShapeNetPartMIoU


class PartSegmentationTask(PointCloudClassificationTask):
    """Per-point part labels with PointNet, DGCNN or PaRot, bare or frame-averaged.

    Parts are numbered globally and contiguously per category (ShapeNetPart: 16 categories, 50 parts); the
    one-hot category is an input of the network, and at evaluation the argmax is restricted to the parts of
    the shape's category. Metrics: point accuracy and instance/class mIoU (``val_instance_mIoU``, ``val_class_mIoU``).

    Args:
        parts_per_category: number of parts of each category, in category order (the number of classes is
            their sum), e.g. ``[4, 2, 2, 4, 4, 3, 3, 2, 4, 2, 6, 2, 3, 3, 3, 3]`` for ShapeNetPart.
        use_category: feed the one-hot category to the network.
        **kwargs: :class:`PointCloudClassificationTask` arguments (``model``, ``frame_averaging``, rotation
            protocol, optimisation); the number of classes is the total number of parts.

    Batch keys: ``points (B, N, 3)``, ``seg (B, N)``, ``category (B,)``. Prediction: ``{"logits": (B, N, P)}``.
    """

    monitor = "val_instance_mIoU"
    monitor_mode = "max"
    segmentation = True

    def __init__(self, parts_per_category: list[int] | None = None, use_category: bool = True,
                 **kwargs: Any) -> None:
        if not parts_per_category or any(int(p) < 1 for p in parts_per_category):
            raise ValueError(f"model.init_args.parts_per_category: expected positive counts, got {parts_per_category}")
        super().__init__(num_classes=sum(int(p) for p in parts_per_category), **kwargs)

    @property
    def category_parts(self) -> list[list[int]]:
        counts = [int(p) for p in self.hparams.parts_per_category]
        starts = [sum(counts[:i]) for i in range(len(counts))]
        return [list(range(s, s + c)) for s, c in zip(starts, counts)]

    def _num_outputs(self) -> int:
        return sum(int(p) for p in self.hparams.parts_per_category)

    def _num_categories(self) -> int:
        return len(self.hparams.parts_per_category) if self.hparams.use_category else 0

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"OverallAccuracy": MulticlassAccuracy(self._num_outputs(), average="micro"),
                                 "ShapeNetPartMIoU": ShapeNetPartMIoU(self.category_parts)})

    def _target(self, batch: dict[str, Any]) -> Tensor:
        return batch["seg"]

    def _restricted(self, preds: dict[str, Any], batch: dict[str, Any]) -> Tensor:
        """Logits with the parts of other categories set to ``-inf``."""
        logits = preds["logits"]
        mask = torch.zeros(len(self.category_parts), logits.shape[-1], dtype=torch.bool, device=logits.device)
        for c, parts in enumerate(self.category_parts):
            mask[c, parts] = True
        allowed = mask[batch["category"].long()]  # (B, P)
        return logits.masked_fill(~allowed[:, None], float("-inf"))

    def update_metrics(self, metrics: MetricCollection, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        pred = self._restricted(preds, batch).argmax(-1)
        metrics["OverallAccuracy"].update(pred, batch["seg"])
        metrics["ShapeNetPartMIoU"].update(pred, batch["seg"], batch["category"])

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        preds = self(batch)
        return {"logits": preds["logits"], "pred": self._restricted(preds, batch).argmax(-1)}
