"""Datamodules of the pointcloud family."""

from visionkit.datamodules.pointcloud.folder import PointCloudFolder
from visionkit.datamodules.pointcloud.modelnet import ModelNet40
from visionkit.datamodules.pointcloud.scanobjectnn import ScanObjectNN
from visionkit.datamodules.pointcloud.shapenetpart import ShapeNetPart
from visionkit.datamodules.pointcloud.synthetic import SyntheticPrimitives

__all__ = ["ModelNet40", "PointCloudFolder", "ScanObjectNN", "ShapeNetPart", "SyntheticPrimitives"]
