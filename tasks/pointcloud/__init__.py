"""Rotation-invariant point-cloud classification and part segmentation."""

from visionkit.tasks.pointcloud.classification import PointCloudClassificationTask
from visionkit.tasks.pointcloud.dgcnn import DGCNN
from visionkit.tasks.pointcloud.frame_averaging import FrameAveraged
from visionkit.tasks.pointcloud.parot import PaRot
from visionkit.tasks.pointcloud.pointnet import PointNet
from visionkit.tasks.pointcloud.segmentation import PartSegmentationTask

__all__ = ["DGCNN", "FrameAveraged", "PaRot", "PartSegmentationTask", "PointCloudClassificationTask", "PointNet"]
