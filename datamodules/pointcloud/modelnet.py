"""ModelNet40 in its two usual on-disk forms: ``modelnet40_normal_resampled`` and ``modelnet40_ply_hdf5_2048``.

``modelnet40_normal_resampled`` (ModelNet40/10 by PointNet++)::

    root/modelnet40_shape_names.txt          one class name per line (label = line index)
    root/modelnet40_train.txt, _test.txt     shape ids, e.g. ``airplane_0001``
    root/<class>/<class>_0001.txt            ``x,y,z,nx,ny,nz`` per line (10 000 points)

``modelnet40_ply_hdf5_2048`` (PointNet)::

    root/shape_names.txt
    root/ply_data_train0.h5 ... ply_data_test1.h5      datasets ``data (S, 2048, 3)``, ``label (S, 1)``

The h5 clouds are y-up (PointNet's providers); set ``up_axis`` to the vertical axis of the files you use
(``z`` rotations of the protocol turn about it). There is no validation split: validation uses the test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from visionkit.datamodules.pointcloud.common import PointCloudDataModule, PointCloudDataset, normalize_unit_sphere
from visionkit.datamodules.pointcloud.readers import check_labels, read_h5_arrays, read_lines, read_table
from visionkit.errors import DataError


def load_modelnet_txt(
    root: Path, split: str, num_points: int, num_classes: int = 40
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]:
    """Read one split of ``modelnet40_normal_resampled``: points, normals, labels, ids, class names."""
    tag = f"modelnet{num_classes}"
    names = read_lines(root / f"{tag}_shape_names.txt")
    index = {n: i for i, n in enumerate(names)}
    ids = read_lines(root / f"{tag}_{split}.txt")
    pts, nrm, lab = [], [], []
    list_file = root / f"{tag}_{split}.txt"
    for line_no, sid in enumerate(ids, 1):
        cls = sid.rsplit("_", 1)[0]
        if cls not in index:
            raise DataError(f"{list_file}:{line_no}: class {cls!r} of {sid!r} is not in {tag}_shape_names.txt")
        arr = read_table(root / cls / f"{sid}.txt", 6, ",", min_rows=num_points)[:num_points]
        pts.append(arr[:, :3])
        nrm.append(arr[:, 3:])
        lab.append(index[cls])
    return (normalize_unit_sphere(np.stack(pts)), np.stack(nrm), np.asarray(lab), ids, names)


def load_modelnet_h5(root: Path, split: str, num_points: int, num_classes: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Read ``ply_data_<split>*.h5`` files: points ``(S, num_points, 3)`` and labels ``(S,)`` in ``0..num_classes-1``;
    NaN/inf points or labels out of range raise ``DataError`` naming the file and record."""
    files = sorted(root.glob(f"ply_data_{split}*.h5"))
    if not files:
        raise DataError(f"{root}: no ply_data_{split}*.h5 files")
    pts, lab = [], []
    for f in files:
        d = read_h5_arrays(f, ["data", "label"])
        data, label = d["data"], d["label"].reshape(-1)
        if data.ndim != 3 or data.shape[2] != 3 or len(label) != len(data):
            raise DataError(
                f"{f}: expected data (S, N, 3) and label (S,) or (S, 1), got {data.shape} and {d['label'].shape}"
            )
        if data.shape[1] < num_points:
            raise DataError(f"{f}: {data.shape[1]} points per cloud, {num_points} requested")
        check_labels(label, num_classes, f)
        pts.append(data[:, :num_points])
        lab.append(label)
    return normalize_unit_sphere(np.concatenate(pts).astype(np.float64)), np.concatenate(lab).astype(np.int64)


class ModelNet40(PointCloudDataModule):
    """ModelNet40 (or ModelNet10) classification from ``modelnet40_normal_resampled`` or the h5 release.

    Args:
        root: dataset folder (see the module docstring for the layouts).
        format: ``normal_resampled`` or ``hdf5``.
        num_points: points per cloud (the first ones of each file, as usual).
        num_classes: 40 or 10 (``normal_resampled`` only: ``modelnet10_*`` lists).
        up_axis: ``y`` for the h5 release, ``z`` otherwise (see module docstring).
        **kwargs: :class:`~visionkit.datamodules.pointcloud.common.PointCloudDataModule` arguments.
    """

    def __init__(
        self,
        root: str = "data/modelnet40_normal_resampled",
        format: Literal["normal_resampled", "hdf5"] = "normal_resampled",
        num_points: int = 1024,
        num_classes: int = 40,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if format not in ("normal_resampled", "hdf5"):
            raise ValueError(f"data.init_args.format: expected normal_resampled or hdf5, got {format!r}")
        self.root, self.format, self.num_points, self.num_classes = root, format, num_points, num_classes

    def load(self, split: str) -> PointCloudDataset:
        root = self.check_path(self.root, "data.init_args.root")
        if self.format == "hdf5":
            pts, lab = load_modelnet_h5(root, split, self.num_points, self.num_classes)
            return PointCloudDataset(pts, lab)
        pts, nrm, lab, ids, _ = load_modelnet_txt(root, split, self.num_points, self.num_classes)
        return PointCloudDataset(pts, lab, normals=nrm, names=ids)
