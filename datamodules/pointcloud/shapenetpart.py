"""ShapeNetPart (``shapenetcore_partanno_segmentation_benchmark_v0_normal``): 16 categories, 50 parts.

Layout::

    root/synsetoffset2category.txt                      ``Airplane<TAB>02691156`` per line
    root/<synset>/<shape id>.txt                        ``x y z nx ny nz part`` per line (global part id)
    root/train_test_split/shuffled_{train,val,test}_file_list.json   ["shape_data/<synset>/<shape id>", ...]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from visionkit.datamodules.pointcloud.common import PointCloudDataModule, PointCloudDataset, normalize_unit_sphere
from visionkit.datamodules.pointcloud.readers import read_lines, read_table, resample
from visionkit.errors import DataError

#: the standard part ids of each category (global ids 0..49)
SHAPENETPART_PARTS: dict[str, list[int]] = {
    "Airplane": [0, 1, 2, 3], "Bag": [4, 5], "Cap": [6, 7], "Car": [8, 9, 10, 11], "Chair": [12, 13, 14, 15],
    "Earphone": [16, 17, 18], "Guitar": [19, 20, 21], "Knife": [22, 23], "Lamp": [24, 25, 26, 27],
    "Laptop": [28, 29], "Motorbike": [30, 31, 32, 33, 34, 35], "Mug": [36, 37], "Pistol": [38, 39, 40],
    "Rocket": [41, 42, 43], "Skateboard": [44, 45, 46], "Table": [47, 48, 49],
}
#: ``parts_per_category`` of :class:`~visionkit.tasks.pointcloud.PartSegmentationTask` for ShapeNetPart
SHAPENETPART_PARTS_PER_CATEGORY = [len(v) for v in SHAPENETPART_PARTS.values()]


def read_categories(root: Path) -> dict[str, str]:
    """``synset -> category name`` from ``synsetoffset2category.txt``."""
    path = root / "synsetoffset2category.txt"
    out = {}
    for i, line in enumerate(read_lines(path), 1):
        fields = line.split()
        if len(fields) != 2:
            raise DataError(f"{path}:{i}: expected '<category> <synset>', got {line!r}")
        if fields[0] not in SHAPENETPART_PARTS:
            raise DataError(f"{path}:{i}: unknown category {fields[0]!r}")
        out[fields[1]] = fields[0]
    return out


def load_shapenetpart(root: Path, split: str, num_points: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Points, normals, part labels, category ids (index in the 16 categories) and shape names of a split."""
    synsets = read_categories(root)
    cat_ids = {name: i for i, name in enumerate(SHAPENETPART_PARTS)}
    split_file = root / "train_test_split" / f"shuffled_{split}_file_list.json"
    if not split_file.is_file():
        raise DataError(f"{split_file}: split file not found")
    try:
        entries = json.loads(split_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{split_file}:{err.lineno}: invalid JSON ({err.msg})") from None
    pts, nrm, seg, cat, names = [], [], [], [], []
    for k, entry in enumerate(entries):
        parts = entry.split("/")
        synset, sid = parts[-2], parts[-1]
        if synset not in synsets:  # a category left out of synsetoffset2category.txt is skipped
            continue
        name = synsets[synset]
        path = root / synset / f"{sid}.txt"
        arr = read_table(path, 7, None)
        labels = arr[:, 6].astype(np.int64)
        allowed = SHAPENETPART_PARTS[name]
        if labels.min() < allowed[0] or labels.max() > allowed[-1] or not np.all(arr[:, 6] == labels):
            raise DataError(f"{path}: part labels must be integers in {allowed[0]}..{allowed[-1]} for {name}")
        idx = resample(arr, num_points, seed=k)
        arr = arr[idx]
        pts.append(arr[:, :3])
        nrm.append(arr[:, 3:6])
        seg.append(labels[idx])
        cat.append(cat_ids[name])
        names.append(f"{synset}/{sid}")
    if not pts:
        raise DataError(f"{split_file}: no shape of the listed categories")
    return normalize_unit_sphere(np.stack(pts)), np.stack(nrm), np.stack(seg), np.asarray(cat), names


class ShapeNetPart(PointCloudDataModule):
    """ShapeNetPart part segmentation (16 categories, 50 parts; ``parts_per_category`` in
    :data:`SHAPENETPART_PARTS_PER_CATEGORY`).

    Args:
        root: ``shapenetcore_partanno_segmentation_benchmark_v0_normal`` folder.
        num_points: points per shape (first points; shorter shapes are completed by seeded repeats).
        up_axis: the dataset's vertical axis (``y`` for ShapeNet).
        **kwargs: :class:`~visionkit.datamodules.pointcloud.common.PointCloudDataModule` arguments.
    """

    num_classes = 50
    num_categories = 16
    parts_per_category = SHAPENETPART_PARTS_PER_CATEGORY

    def __init__(self, root: str = "data/shapenetcore_partanno_segmentation_benchmark_v0_normal",
                 num_points: int = 2048, up_axis: str = "y", **kwargs: Any) -> None:
        super().__init__(up_axis=up_axis, **kwargs)
        self.root, self.num_points = root, num_points

    def load(self, split: str) -> PointCloudDataset:
        root = self.check_path(self.root, "data.init_args.root")
        pts, nrm, seg, cat, names = load_shapenetpart(root, split, self.num_points)
        return PointCloudDataset(pts, cat, seg=seg, category=cat, normals=nrm, names=names)

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", None) and self.train_dataset is None:
            self.train_dataset = self.load("train")
        if stage in ("fit", "validate", None) and self.val_dataset is None:
            self.val_dataset = self.load("val")
        if stage in ("test", "predict", None) and self.test_dataset is None:
            self.test_dataset = self.load("test")
