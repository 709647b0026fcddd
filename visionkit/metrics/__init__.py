"""Metrics as ``torchmetrics.Metric`` subclasses whose states reduce correctly under DDP."""

from visionkit.metrics.dota_map import DOTAMeanAP, average_precision, match_detections
from visionkit.metrics.generation import CodebookUsage, JudgeAccuracy, JudgeKID, TokenNLL, judge_fid, judge_kid
from visionkit.metrics.hands import MPJPE, MPVPE, MRRPE, PAMPJPE, procrustes_align
from visionkit.metrics.motion import ADE, FDE, MSE, MinADE, MinFDE, MPJPEHorizons
from visionkit.metrics.pointcloud import MeanClassAccuracy, OverallAccuracy, RepeatedAccuracy, ShapeNetPartMIoU

__all__ = [
    "ADE", "FDE", "MPJPE", "MPVPE", "MRRPE", "MSE", "PAMPJPE", "CodebookUsage", "DOTAMeanAP", "JudgeAccuracy",
    "JudgeKID", "MPJPEHorizons", "MeanClassAccuracy", "MinADE", "MinFDE", "OverallAccuracy", "RepeatedAccuracy",
    "ShapeNetPartMIoU", "TokenNLL", "average_precision", "judge_fid", "judge_kid", "match_detections",
    "procrustes_align",
]
