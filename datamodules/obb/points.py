"""Datamodules of the point-supervised pipeline: point labels in, pseudo oriented boxes out, detector on them.

* Step 1 (:class:`~visionkit.tasks.obb.pointobb.PointOBBTask`) trains on point labels and, in ``predict``, writes
  one pseudo box per point for the *training* images: :class:`SyntheticPointOBB`, :class:`DOTAPoints` and
  :class:`DIORRPoints` serve the training split to ``predict`` (``predict_split``).
* Step 2 (:class:`~visionkit.tasks.obb.detection.RotatedDetectionTask`) trains on the written DOTA label files:
  :class:`SyntheticPseudoOBB` replaces the training boxes of :class:`SyntheticOBB` by the boxes read from
  ``pseudo_label_dir/<image_id>.txt`` and keeps the true boxes for validation and test. For DOTA, point the
  ``labelTxt`` folder of the training split at the written files instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from visionkit.datamodules.obb.dota import DIORR, DOTA, read_dota_txt
from visionkit.datamodules.obb.synthetic import SyntheticOBB
from visionkit.errors import DatasetNotFoundError
from visionkit.ops.rotated_boxes import poly2obb

__all__ = ["SyntheticPointOBB", "SyntheticPseudoOBB", "PseudoLabelDataset", "DOTAPoints", "DIORRPoints"]

_SPLITS = ("train", "val", "test")


def _check_split(split: str) -> str:
    if split not in _SPLITS:
        raise ValueError(f"data.init_args.predict_split: expected one of {_SPLITS}, got {split!r}")
    return split


class SyntheticPointOBB(SyntheticOBB):
    """:class:`SyntheticOBB` with point labels (``label_mode='point'``) whose ``predict`` runs on ``predict_split``
    (the training images by default, to write their pseudo labels).

    Args:
        predict_split: ``'train'``, ``'val'`` or ``'test'``.
        **kwargs: :class:`SyntheticOBB` arguments (``label_mode`` defaults to ``'point'``).
    """

    def __init__(self, predict_split: str = "train", label_mode: str = "point", **kwargs: Any) -> None:
        super().__init__(label_mode=label_mode, **kwargs)
        self.predict_split = _check_split(predict_split)

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict":
            if self.predict_dataset is None:
                self.predict_dataset = self._make(self.predict_split)
            return
        super().setup(stage)


class PseudoLabelDataset(Dataset):
    """Wrap an OBB dataset and replace each sample's ``boxes``/``labels`` by those of a DOTA label file.

    The file of a sample is ``<label_dir>/<image_id>.txt`` (``x1 y1 ... x4 y4 class difficult`` lines, read with
    :func:`~visionkit.datamodules.obb.dota.read_dota_txt`, so malformed lines and unknown classes raise an error
    naming the file and line). All files are read once here. ``gt_boxes`` keeps the true boxes.

    Args:
        base: dataset returning the sample dicts of :mod:`visionkit.datamodules.obb.synthetic`.
        label_dir: folder of the label files.
        class_names: class names in label order.
        key: config key named in errors.
    """

    def __init__(self, base: Dataset, label_dir: str | Path, class_names: list[str],
                 key: str = "data.init_args.pseudo_label_dir") -> None:
        self.base = base
        self.label_dir = Path(label_dir)
        if not self.label_dir.is_dir():
            raise DatasetNotFoundError(
                f"{key}: {self.label_dir} does not exist: write the pseudo labels first (fit the point-supervised "
                "config, then predict with it, e.g. configs/obb/pointobb_synthetic.yaml; docs/pointobb.md), or set "
                "it to null to train on the true boxes")
        index = {c: i for i, c in enumerate(class_names)}
        self.targets = []
        for i in range(len(base)):
            image_id = base[i]["image_id"]
            path = self.label_dir / f"{image_id}.txt"
            if not path.exists():
                raise DatasetNotFoundError(f"{key}: no label file {path} for image {image_id}")
            ann = read_dota_txt(path, class_names, degenerate="keep", warn=False)
            polys = torch.from_numpy(ann["polys"])
            boxes = poly2obb(polys, "le90").float() if polys.shape[0] else torch.zeros(0, 5)
            labels = torch.tensor([index[c] for c in ann["labels"]], dtype=torch.long)
            self.targets.append((boxes, labels, torch.from_numpy(ann["difficult"]).bool()))

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        sample = dict(self.base[i])
        boxes, labels, difficult = self.targets[i]
        sample.update(boxes=boxes.clone(), labels=labels.clone(), difficult=difficult.clone())
        return sample


class SyntheticPseudoOBB(SyntheticOBB):
    """:class:`SyntheticOBB` whose training boxes come from pseudo-label files (step 2 of the point pipeline).

    Validation and test keep the true boxes, so the detector is measured against them. With
    ``pseudo_label_dir: null`` the true training boxes are used: the fully supervised reference on the same
    budget.

    Args:
        pseudo_label_dir: folder of ``<image_id>.txt`` DOTA label files for the training images, or None.
        **kwargs: :class:`SyntheticOBB` arguments (``label_mode`` must stay ``'obb'``).
    """

    def __init__(self, pseudo_label_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.common["label_mode"] != "obb":
            raise ValueError("data.init_args.label_mode: SyntheticPseudoOBB trains on boxes; use 'obb'")
        self.pseudo_label_dir = pseudo_label_dir

    def setup(self, stage: str | None = None) -> None:
        fresh = self.train_dataset is None
        super().setup(stage)
        if fresh and self.train_dataset is not None and self.pseudo_label_dir is not None:
            self.train_dataset = PseudoLabelDataset(self.train_dataset, self.pseudo_label_dir, self.class_names)


class _PredictSplitMixin:
    """``predict`` on ``predict_split`` (default the training split) instead of the test split."""

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict":
            self.check_path(self.root, "data.init_args.root")
            if self.predict_dataset is None:
                self.predict_dataset = self.make_dataset(self.predict_split)
            return
        super().setup(stage)


class DOTAPoints(_PredictSplitMixin, DOTA):
    """:class:`~visionkit.datamodules.obb.dota.DOTA` for point supervision: point files from ``point_dir`` (``x y
    class`` per line; a point outside its image or an unknown class raises an error naming file and line), or
    points derived from the boxes; ``predict`` runs on ``predict_split``.

    Args:
        predict_split: ``'train'`` (default), ``'val'`` or ``'test'``.
        **kwargs: :class:`~visionkit.datamodules.obb.dota.DOTA` arguments.
    """

    def __init__(self, predict_split: str = "train", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.predict_split = _check_split(predict_split)


class DIORRPoints(_PredictSplitMixin, DIORR):
    """:class:`~visionkit.datamodules.obb.dota.DIORR` for point supervision (see :class:`DOTAPoints`).

    Args:
        predict_split: ``'train'`` (default), ``'val'`` or ``'test'``.
        **kwargs: :class:`~visionkit.datamodules.obb.dota.DIORR` arguments.
    """

    def __init__(self, predict_split: str = "train", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.predict_split = _check_split(predict_split)
