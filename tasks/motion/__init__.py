"""Equivariant multi-agent motion prediction."""

from visionkit.tasks.motion.baselines import ConstantVelocity
from visionkit.tasks.motion.eqmotion import EqMotion
from visionkit.tasks.motion.prediction import MotionPredictionTask

__all__ = ["ConstantVelocity", "EqMotion", "MotionPredictionTask"]
