"""Datamodules of the pointcloud family."""

from visionkit.datamodules.pointcloud.synthetic import SyntheticPrimitives

__all__ = ["SyntheticPrimitives"]
