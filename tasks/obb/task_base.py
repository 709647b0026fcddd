"""``OBBTask``: what the oriented-detection tasks share (class names, the angle coder, the DOTA mAP metric)."""

from __future__ import annotations

from collections.abc import Sequence

from visionkit.tasks.base import BaseTask
from visionkit.tasks.obb.coders import AngleCoder, build_coder
from visionkit.tasks.obb.dota_map import DOTAMeanAP

__all__ = ["OBBTask"]


class OBBTask(BaseTask):
    """Base of the oriented-detection tasks. Subclasses keep ``num_classes``, ``class_names``, ``angle_coder``,
    ``coder_kwargs``, ``map_ap_mode`` and ``map_match`` among their hyperparameters."""

    @staticmethod
    def check_class_names(num_classes: int, class_names: Sequence[str] | None) -> None:
        """Raise a ``ValueError`` naming ``model.init_args.class_names`` when its length is not ``num_classes``."""
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"model.init_args.class_names: {len(class_names)} names for num_classes={num_classes}")

    @property
    def class_names(self) -> list[str]:
        """The class names (``class_<i>`` when none were given)."""
        names = self.hparams.class_names
        return list(names) if names else [f"class_{i}" for i in range(self.hparams.num_classes)]

    def build_angle_coder(self) -> AngleCoder:
        """The angle coder named by ``angle_coder`` with ``coder_kwargs``."""
        return build_coder(self.hparams.angle_coder, **(self.hparams.coder_kwargs or {}))

    def dota_map(self) -> DOTAMeanAP:
        """DOTA-protocol mAP at IoU 0.5 over the task's classes."""
        hp = self.hparams
        return DOTAMeanAP(iou_thresholds=(0.5,), ap_mode=hp.map_ap_mode, match=hp.map_match,
                          num_classes=hp.num_classes, class_names=self.class_names)
