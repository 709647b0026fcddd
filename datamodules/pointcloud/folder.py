"""A folder of meshes or point files per class, read through open3d.

Layout (the ModelNet OFF release has exactly this shape)::

    root/<class>/train/*.{off,obj,ply,stl,pcd,xyz,pts}
    root/<class>/test/*.{...}

Meshes are sampled on their surface (area-weighted, seeded per file); point files use their first points.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from visionkit.datamodules.pointcloud.common import PointCloudDataModule, PointCloudDataset, normalize_unit_sphere
from visionkit.datamodules.pointcloud.readers import read_geometry
from visionkit.errors import DataError

EXTENSIONS = (".off", ".obj", ".ply", ".stl", ".pcd", ".xyz", ".pts")


class PointCloudFolder(PointCloudDataModule):
    """Classification from ``root/<class>/<split>/<file>``; classes are the sorted sub-folder names.

    Args:
        root: dataset folder.
        num_points: points per cloud.
        **kwargs: :class:`~visionkit.datamodules.pointcloud.common.PointCloudDataModule` arguments.
    """

    def __init__(self, root: str = "data/folder", num_points: int = 1024, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root, self.num_points = root, num_points
        self.classes: list[str] = []

    def load(self, split: str) -> PointCloudDataset:
        root = self.check_path(self.root, "data.init_args.root")
        self.classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        pts, lab, names = [], [], []
        for c, name in enumerate(self.classes):
            files = sorted(f for f in (root / name / split).glob("*") if f.suffix.lower() in EXTENSIONS)
            for k, f in enumerate(files):
                pts.append(read_geometry(f, self.num_points, seed=k))
                lab.append(c)
                names.append(str(Path(name) / split / f.name))
        if not pts:
            raise DataError(f"{root}: no {split} files with extensions {', '.join(EXTENSIONS)}")
        return PointCloudDataset(normalize_unit_sphere(np.stack(pts)), np.asarray(lab), names=names)

    @property
    def num_classes(self) -> int:
        return len(self.classes)
