"""visionkit datamodules: datasets in their real on-disk formats plus built-in synthetic ones.

Importing this package imports every family so that datamodules resolve by short class name in configs.
"""

from visionkit.datamodules import generation, hands, motion, obb, pointcloud
from visionkit.datamodules.base import BaseDataModule, EpochSeededSampler, collate_dict

__all__ = ["BaseDataModule", "EpochSeededSampler", "collate_dict", "generation", "hands", "motion", "obb",
           "pointcloud"]
