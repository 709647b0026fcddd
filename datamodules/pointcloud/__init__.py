"""Datamodules of the pointcloud family."""
