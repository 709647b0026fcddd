"""``RotatedDetectionTask``: oriented object detection with a rotated FCOS and a choice of angle coder."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MetricCollection
from torchvision.ops import sigmoid_focal_loss

from visionkit.dist import global_normalizer
from visionkit.ops.rotated_boxes import rotated_iou_loss
from visionkit.tasks.base import model_config, reject_moved_options
from visionkit.tasks.obb.fcos import RotatedFCOS, RotatedFCOSConfig, centerness_target, decode_sides
from visionkit.tasks.obb.metrics_angle import MeanAngleError
from visionkit.tasks.obb.task_base import OBBTask
from visionkit.tasks.obb.tiling import predict_large_image

__all__ = ["RotatedDetectionTask", "stack_images"]


def stack_images(images: Tensor | Sequence[Tensor], divisor: int = 32) -> Tensor:
    """Batch images ``(B, C, H, W)`` (returned as is) or a list of ``(C, H_i, W_i)``, zero-padded at the
    bottom/right to a common size that is a multiple of ``divisor`` (box coordinates are unchanged)."""
    if torch.is_tensor(images):
        return images
    H = max(int(im.shape[-2]) for im in images)
    W = max(int(im.shape[-1]) for im in images)
    H, W = math.ceil(H / divisor) * divisor, math.ceil(W / divisor) * divisor
    out = images[0].new_zeros(len(images), images[0].shape[0], H, W)
    for i, im in enumerate(images):
        out[i, :, : im.shape[-2], : im.shape[-1]] = im
    return out


class RotatedDetectionTask(OBBTask):
    """Single-stage anchor-free rotated detector (FCOS-style) with a pluggable angle coder.

    Batch keys: ``image (B, 3, H, W)`` in [0, 1], ``boxes`` list of ``(N_i, 5)`` le90 boxes
    ``(cx, cy, w, h, theta)`` in pixels, ``labels`` list of ``(N_i,)``; evaluation also reads ``difficult`` and,
    when present, ``gt_boxes`` (the true oriented boxes, used instead of ``boxes`` for the metrics).
    ``task(batch)`` returns ``{"boxes": [(K, 5)], "scores": [(K,)], "labels": [(K,)]}`` per image (eval mode).

    Losses (summed into ``loss``): sigmoid focal classification (alpha 0.25, gamma 2) over all locations,
    normalised by the number of positives; rotated IoU loss (``-log IoU`` or ``1 - IoU``) of the decoded
    box against its target, weighted by the centre-ness target and normalised by its sum; centre-ness binary
    cross-entropy over positives; the coder's angle loss (times ``angle_loss_weight``) and its unit-circle
    constraint (times ``constraint_loss_weight``, UCR only) over positives.

    Design choices beyond the plain FCOS recipe:

    * Side distances are measured in the box's own frame, so ``(l, t, r, b)`` plus the angle define the box
      (:func:`~visionkit.tasks.obb.fcos.decode_sides`); the IoU loss uses the *decoded* angle, so for coders with
      a differentiable decoder (UCR, PSC, plain) the box loss also trains the angle; CSL's arg-max is not
      differentiable and its angle is learnt from the CSL loss alone.
    * Centre sampling (radius 1.5 strides along the box axes) is on by default; a box with no location in its
      centre region, or none at its scale level, falls back to every location inside it (small, thin boxes are
      never left without positives while a location centre lies inside them).
    * Default regression ranges follow FCOS's ``8 × stride`` edges; CPU configs on small images override them.
    * Side distances are ``exp(s_l · x) · stride`` with a learnt per-level scale ``s_l`` (always positive, so the
      IoU loss never sees a degenerate box at initialisation).
    * Detection score ``sigmoid(class) · sigmoid(centre-ness)``; ``score_thr`` applies to the class probability.
    * The image is standardised with the ImageNet mean and std inside the model (``normalize``).
    * Images of different sizes (a list) are zero-padded bottom/right to a multiple of 32.
    * The mean angle error is measured on each ground-truth box's highest-scoring same-class detection with
      IoU > 0.5 (:class:`~visionkit.tasks.obb.metrics_angle.MeanAngleError`).

    Args:
        num_classes: foreground classes (from the datamodule in the CLI).
        class_names: names for per-class metrics and DOTA files (default ``class_<i>``).
        fcos: the network's options (backbone, pyramid, head, assignment, inference thresholds),
            :class:`~visionkit.tasks.obb.fcos.RotatedFCOSConfig`; in a config ``model.init_args.fcos.<option>``.
        angle_coder: ``"ucr"``, ``"psc"``, ``"csl"`` or ``"plain"``.
        coder_kwargs: arguments of the coder (e.g. ``{dims: 3}`` for UCR).
        angle_loss_weight: weight of the coder's angle loss.
        constraint_loss_weight: weight of the coder's constraint loss (UCR's unit-circle term).
        iou_loss: ``"log"`` (``-log IoU``) or ``"linear"`` (``1 - IoU``).
        focal_alpha: focal-loss alpha.
        focal_gamma: focal-loss gamma.
        map_ap_mode: ``"voc07"`` (DOTA devkit) or ``"area"`` for the mAP metric.
        map_match: ``"gt"`` (IoU must exceed the threshold, DOTA devkit) or ``"ge"``.
        tile_batch: tiles per forward pass when a batch holds full-size images with sliding windows
            (:class:`~visionkit.datamodules.obb.tiles.LargeImages`).
        merge_iou_thr: NMS threshold (per class) that merges the tiles' detections of a full-size image.
        **kwargs: optimisation arguments of :class:`~visionkit.tasks.base.BaseTask`.
    """

    monitor = "val_map50"
    monitor_mode = "max"

    def __init__(
        self,
        num_classes: int = 3,
        class_names: list[str] | None = None,
        fcos: RotatedFCOSConfig = RotatedFCOSConfig(),  # noqa: B008 (frozen: one shared default is safe)
        angle_coder: Literal["ucr", "psc", "csl", "plain"] = "ucr",
        coder_kwargs: dict[str, Any] | None = None,
        angle_loss_weight: float = 0.2,
        constraint_loss_weight: float = 0.05,
        iou_loss: Literal["log", "linear"] = "log",
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        map_ap_mode: Literal["voc07", "area"] = "voc07",
        map_match: Literal["gt", "ge"] = "gt",
        tile_batch: int = 8,
        merge_iou_thr: float = 0.1,
        **kwargs: Any,
    ) -> None:
        if tile_batch < 1:
            raise ValueError(f"model.init_args.tile_batch: expected >= 1, got {tile_batch}")
        if iou_loss not in ("log", "linear"):
            raise ValueError(f"model.init_args.iou_loss: expected 'log' or 'linear', got {iou_loss!r}")
        self.check_class_names(num_classes, class_names)
        reject_moved_options(RotatedFCOSConfig, kwargs, "fcos")
        # the hyperparameters (read from this frame by save_hyperparameters) hold plain values, so that checkpoints
        # load with weights_only=True
        fcos = asdict(model_config(RotatedFCOSConfig, fcos, "fcos"))  # noqa: F841
        super().__init__(**kwargs)

    # ------------------------------------------------------------------------------------------ hooks
    def configure_models(self) -> None:
        hp = self.hparams
        self.coder = self.build_angle_coder()
        self.model = RotatedFCOS(hp.num_classes, self.coder, model_config(RotatedFCOSConfig, hp.fcos, "fcos"))

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({
            "map": self.dota_map(),
            "angle_error": MeanAngleError(iou_threshold=0.5),
        })

    # ------------------------------------------------------------------------------------------ losses
    def _losses(self, out: dict[str, Any], boxes: Sequence[Tensor], labels: Sequence[Tensor]) -> dict[str, Tensor]:
        hp = self.hparams
        tgt = self.model.get_targets(out, boxes, labels)
        cls = out["cls"]  # (B, P, C)
        C = cls.shape[-1]
        pos = tgt["labels"] < C  # (B, P)
        # normalisers summed over DDP processes: the same losses for any split of the global batch
        num_pos = global_normalizer(pos.sum())
        onehot = F.one_hot(tgt["labels"], C + 1)[..., :C].to(cls.dtype)
        loss_cls = sigmoid_focal_loss(cls, onehot, alpha=hp.focal_alpha, gamma=hp.focal_gamma,
                                      reduction="sum") / num_pos
        points = out["points"][None].expand(pos.shape[0], -1, -1)[pos]  # (M, 2)
        sides_t = tgt["sides"][pos]  # (M, 4)
        boxes_t = tgt["boxes"][pos]  # (M, 5)
        ang = out["angle"][pos]  # (M, D)
        theta = self.coder.decode(ang)  # (M,)
        pred_boxes = decode_sides(points, out["dist"][pos], theta)
        ctr_t = centerness_target(sides_t)  # (M,)
        ctr_norm = global_normalizer(ctr_t.sum(), min_value=1e-6)
        if pos.any():
            iou_l = rotated_iou_loss(pred_boxes, boxes_t, mode=hp.iou_loss)  # (M,)
        else:  # no positives in this process (others may have some)
            iou_l = pred_boxes.sum(-1) * 0.0
        loss_box = (iou_l * ctr_t).sum() / ctr_norm
        loss_ctr = F.binary_cross_entropy_with_logits(out["ctr"][pos], ctr_t, reduction="sum") / num_pos
        loss_angle = self.coder.loss(ang, boxes_t[:, 4]).sum() / num_pos * hp.angle_loss_weight
        loss_con = self.coder.constraint_loss(ang).sum() / num_pos * hp.constraint_loss_weight
        # every head output stays in the graph when a process has no positives (DDP expects all gradients)
        zero = sum(out[k].sum() for k in ("dist", "ctr", "angle")) * 0.0
        total = loss_cls + loss_box + loss_ctr + loss_angle + loss_con + zero
        return {"loss": total, "cls": loss_cls, "box": loss_box, "ctr": loss_ctr, "angle": loss_angle,
                "constraint": loss_con}

    def compute_outputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Raw head outputs of :class:`~visionkit.tasks.obb.fcos.RotatedFCOS` (plus the stacked ``images``)."""
        images = stack_images(batch["image"])
        out = dict(self.model(images))
        out["images"] = images
        return out

    def compute_losses(self, outputs: dict[str, Any], batch: dict[str, Any]) -> dict[str, Tensor]:
        return self._losses(outputs, batch["boxes"], batch["labels"])

    # ------------------------------------------------------------------------------------------ inference
    def forward(self, batch: dict[str, Any]) -> dict[str, list[Tensor]]:
        """Detections per image: ``boxes (K, 5)`` le90, ``scores (K,)``, ``labels (K,)`` (lists over images).

        A batch of full-size images with sliding windows (keys ``views``, ``rates``, ``windows``, ``tile_size``
        of :mod:`~visionkit.datamodules.obb.tiles`) is detected batch of tiles by batch of tiles and merged per
        image (:func:`~visionkit.tasks.obb.tiling.predict_large_image`); its boxes are in full-image pixels.
        """
        if "windows" not in batch:
            return super().forward(batch)
        hp = self.hparams
        dets = [predict_large_image(self.model.predict, views, rates, windows, int(size), hp.tile_batch,
                                    hp.merge_iou_thr)
                for views, rates, windows, size in zip(batch["views"], batch["rates"], batch["windows"],
                                                       batch["tile_size"])]  # one image at a time: a few
        return {k: [d[k] for d in dets] for k in ("boxes", "scores", "labels")}

    def postprocess(self, outputs: dict[str, Any], batch: dict[str, Any]) -> dict[str, list[Tensor]]:
        """Detections per image: ``boxes (K, 5)`` le90, ``scores (K,)``, ``labels (K,)`` (lists over images)."""
        dets = self.model.predict(outputs["images"], outputs)
        return {k: [d[k] for d in dets] for k in ("boxes", "scores", "labels")}

    def update_metrics(self, metrics: MetricCollection, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        gts = batch.get("gt_boxes", batch["boxes"])
        n = len(gts)
        difficult = batch.get("difficult")
        if difficult is None:
            difficult = [torch.zeros(len(g), dtype=torch.bool) for g in gts]
        p = [{"boxes": preds["boxes"][i].detach(), "scores": preds["scores"][i].detach(),
              "labels": preds["labels"][i].detach()} for i in range(n)]
        t = [{"boxes": gts[i], "labels": batch["labels"][i], "difficult": difficult[i]} for i in range(n)]
        metrics.update(p, t)
