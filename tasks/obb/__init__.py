"""Oriented object detection: the rotated FCOS detector, PointOBB, the angle coders and the angle-error metric."""

from visionkit.tasks.obb.coders import (
    AngleCoder,
    CSLCoder,
    PlainAngleCoder,
    PSCCoder,
    UCRCoder,
    build_coder,
)
from visionkit.tasks.obb.detection import RotatedDetectionTask
from visionkit.tasks.obb.fcos import RotatedFCOS
from visionkit.tasks.obb.metrics_angle import MeanAngleError
from visionkit.tasks.obb.pointobb import PointOBB, PointOBBTask, PseudoBoxIoU

__all__ = [
    "AngleCoder",
    "CSLCoder",
    "MeanAngleError",
    "PSCCoder",
    "PlainAngleCoder",
    "PointOBB",
    "PointOBBTask",
    "PseudoBoxIoU",
    "RotatedDetectionTask",
    "RotatedFCOS",
    "UCRCoder",
    "build_coder",
]
