"""ScanObjectNN (15 classes of scanned objects) from its h5 files (``data (S, 2048, 3)``, ``label (S,)``).

Layout, e.g. ``root/main_split/training_objectdataset_augmentedrot_scale75.h5`` and
``root/main_split/test_objectdataset_augmentedrot_scale75.h5``; pick the variant with ``train_file`` and
``test_file`` (paths relative to ``root``). Validation uses the test split.
"""

from __future__ import annotations

from typing import Any

from visionkit.datamodules.pointcloud.common import PointCloudDataModule, PointCloudDataset, normalize_unit_sphere
from visionkit.datamodules.pointcloud.readers import check_labels, read_h5_arrays
from visionkit.errors import DataError


class ScanObjectNN(PointCloudDataModule):
    """ScanObjectNN classification.

    Args:
        root: dataset folder.
        train_file: training h5 relative to ``root`` (hardest variant by default).
        test_file: test h5 relative to ``root``.
        num_points: first points of each cloud.
        **kwargs: :class:`~visionkit.datamodules.pointcloud.common.PointCloudDataModule` arguments.
    """

    num_classes = 15

    def __init__(self, root: str = "data/ScanObjectNN/h5_files",
                 train_file: str = "main_split/training_objectdataset_augmentedrot_scale75.h5",
                 test_file: str = "main_split/test_objectdataset_augmentedrot_scale75.h5", num_points: int = 1024,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root, self.files, self.num_points = root, {"train": train_file, "test": test_file}, num_points

    def load(self, split: str) -> PointCloudDataset:
        root = self.check_path(self.root, "data.init_args.root")
        path = root / self.files[split]
        if not path.is_file():
            raise DataError(f"{path}: file not found (data.init_args.{split}_file)")
        d = read_h5_arrays(path, ["data", "label"])
        data, label = d["data"], d["label"].reshape(-1)
        if data.ndim != 3 or data.shape[2] < 3 or len(label) != len(data):
            raise DataError(f"{path}: expected data (S, N, 3) and label (S,), got {data.shape} and {d['label'].shape}")
        if data.shape[1] < self.num_points:
            raise DataError(f"{path}: {data.shape[1]} points per cloud, {self.num_points} requested")
        check_labels(label, self.num_classes, path)
        return PointCloudDataset(normalize_unit_sphere(data[:, : self.num_points, :3].astype("float64")), label)
