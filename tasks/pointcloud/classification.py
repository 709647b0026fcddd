"""Point-cloud classification under a rotation protocol."""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor
from torch.nn import functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from visionkit.tasks.base import BaseTask
from visionkit.tasks.pointcloud.metrics import MeanClassAccuracy, RepeatedAccuracy
from visionkit.tasks.pointcloud.models import build_pointcloud_model
from visionkit.tasks.pointcloud.protocol import (
    Rotation,
    check_mode,
    protocol_rotations,
    rotate_batch,
    sample_keys,
    seeded_rotations,
)


class PointCloudClassificationTask(BaseTask):
    """Shape classification with PointNet, DGCNN or PaRot, bare or frame-averaged.

    Rotation protocol: training clouds are rotated by ``train_rotation``; validation and test clouds by
    ``test_rotation`` (one seeded rotation per shape for validation, ``test_repeats`` for test, whose
    accuracies are reported as ``test_RepeatedAccuracy_mean`` / ``_std`` next to the pooled metrics). A
    datamodule's ``test_rotation`` overrides the task's (evaluating a checkpoint under another protocol).
    ``task(batch)`` predicts on the clouds as given.

    Args:
        model: ``pointnet``, ``dgcnn`` or ``parot``.
        num_classes: number of shape classes.
        frame_averaging: ``none``, ``so3`` (4 PCA frames) or ``o3`` (8 frames).
        model_args: constructor arguments of the network (widths, patch sizes...).
        train_rotation: ``none``, ``z`` or ``so3``.
        test_rotation: ``none``, ``z`` or ``so3``.
        test_repeats: seeded rotations per test shape.
        eval_seed: seed of the evaluation rotations.
        up_axis: axis of ``z`` rotations; None takes the datamodule's ``up_axis`` (else ``z``).
        label_smoothing: cross-entropy label smoothing (PaRot: 0.2).
        disentangle_weights: PaRot loss weights ``(consistency local, consistency global, orthogonality local,
            orthogonality global)``.
        **kwargs: optimisation arguments of :class:`~visionkit.tasks.base.BaseTask`.

    Batch keys: ``points (B, N, 3)``, ``label (B,)``, optional ``index (B,)`` (seeds the test rotations).
    Prediction: ``{"logits": (B, C)}``.
    """

    monitor = "val_OverallAccuracy"
    monitor_mode = "max"

    def __init__(
        self,
        model: Literal["pointnet", "dgcnn", "parot"] = "pointnet",
        num_classes: int = 10,
        frame_averaging: Literal["none", "so3", "o3"] = "none",
        model_args: dict[str, Any] | None = None,
        train_rotation: Rotation = "z",
        test_rotation: Rotation = "so3",
        test_repeats: int = 3,
        eval_seed: int = 0,
        up_axis: Literal["x", "y", "z"] | None = None,
        label_smoothing: float = 0.0,
        disentangle_weights: tuple[float, float, float, float] = (1.0, 1.0, 0.2, 0.1),
        **kwargs: Any,
    ) -> None:
        check_mode(train_rotation, "model.init_args.train_rotation")
        check_mode(test_rotation, "model.init_args.test_rotation")
        if test_repeats < 1:
            raise ValueError(f"model.init_args.test_repeats: expected >= 1, got {test_repeats}")
        super().__init__(**kwargs)

    # ---------------------------------------------------------------- building
    segmentation = False

    def configure_models(self) -> None:
        hp = self.hparams
        self.model = build_pointcloud_model(
            hp.model, self._num_outputs(), hp.frame_averaging, self.segmentation, self._num_categories(), hp.model_args
        )

    def _num_outputs(self) -> int:
        return self.hparams.num_classes

    def _num_categories(self) -> int:
        return 0

    def make_metrics(self) -> MetricCollection:
        C = self.hparams.num_classes
        return MetricCollection(
            {"OverallAccuracy": MulticlassAccuracy(C, average="micro"), "MeanClassAccuracy": MeanClassAccuracy(C)}
        )

    def configure_metrics(self) -> None:
        super().configure_metrics()
        self.test_repeated = RepeatedAccuracy(self.hparams.test_repeats)

    @property
    def test_rotation(self) -> str:
        """The evaluation rotation: the datamodule's ``test_rotation`` when set, else the task's."""
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        mode = getattr(dm, "test_rotation", None)
        return mode if mode is not None else self.hparams.test_rotation

    @property
    def up_axis(self) -> str:
        if self.hparams.up_axis is not None:
            return self.hparams.up_axis
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        return getattr(dm, "up_axis", "z")

    # ---------------------------------------------------------------- model calls
    def _target(self, batch: dict[str, Any]) -> Tensor:
        return batch["label"]

    def compute_outputs(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """``(logits (B, C) or (B, N, C), auxiliary losses)``; training batches are turned by ``train_rotation``."""
        points, category = batch["points"], batch.get("category")
        if self.training and self.hparams.train_rotation != "none":
            R = protocol_rotations(
                self.hparams.train_rotation, points.shape[0], self.up_axis, dtype=points.dtype, device=points.device
            )
            points = rotate_batch({"points": points}, R)["points"]
        if self.training and hasattr(self.model, "forward_train"):
            return self.model.forward_train(points, category)
        return self.model(points, category), {}

    def compute_losses(self, outputs: tuple[Tensor, dict[str, Tensor]], batch: dict[str, Any]) -> dict[str, Tensor]:
        logits, aux = outputs
        target = self._target(batch)
        ce = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            target.reshape(-1).long(),
            label_smoothing=self.hparams.label_smoothing,
        )
        losses = {"ce": ce}
        if aux:
            w = self.hparams.disentangle_weights
            losses["disentangle"] = (
                w[0] * aux["local_consistency"]
                + w[1] * aux["global_consistency"]
                + w[2] * aux["local_orthogonality"]
                + w[3] * aux["global_orthogonality"]
            )
        losses["loss"] = sum(losses.values())
        return losses

    def postprocess(self, outputs: tuple[Tensor, dict[str, Tensor]], batch: dict[str, Any]) -> dict[str, Tensor]:
        return {"logits": outputs[0]}

    def update_metrics(self, metrics: MetricCollection, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        metrics.update(preds["logits"], self._target(batch))

    # ---------------------------------------------------------------- protocol
    def eval_rotation(self, batch: dict[str, Any], batch_idx: int, repeat: int) -> dict[str, Any]:
        """The batch rotated by the seeded ``test_rotation`` number ``repeat`` of each shape."""
        mode = self.test_rotation
        if mode == "none":
            return batch
        keys = sample_keys(batch, batch_idx)
        R = seeded_rotations(
            mode,
            keys,
            repeat,
            self.hparams.eval_seed,
            self.up_axis,
            dtype=batch["points"].dtype,
            device=batch["points"].device,
        )
        return rotate_batch(batch, R)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self.evaluation_step(self.eval_rotation(batch, batch_idx, 0), "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        preds = None
        for r in range(self.hparams.test_repeats):
            rb = self.eval_rotation(batch, batch_idx, r)
            preds = self.evaluation_step(rb, "test")
            self.test_repeated.update(self._restricted(preds, rb).argmax(-1), self._target(rb), r)
        return preds

    def _restricted(self, preds: dict[str, Any], batch: dict[str, Any]) -> Tensor:
        return preds["logits"]

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        rep = self.test_repeated.compute()
        self.log_dict({f"test_RepeatedAccuracy_{k}": v for k, v in rep.items()}, sync_dist=False)
        self.test_repeated.reset()

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        logits = self(batch)["logits"]
        return {"logits": logits, "pred": logits.argmax(-1)}
