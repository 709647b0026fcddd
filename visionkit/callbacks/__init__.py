"""Lightning callbacks shared by all families: checkpoints, progress, prediction writers."""

from visionkit.callbacks.checkpoint import AtomicCheckpointIO, TaskCheckpoint
from visionkit.callbacks.progress import LogLineProgressBar
from visionkit.callbacks.writer import PredictionWriter

__all__ = ["AtomicCheckpointIO", "LogLineProgressBar", "PredictionWriter", "TaskCheckpoint"]
