"""Datamodules of the motion family."""

from visionkit.datamodules.motion.common import TrajectoryDataset
from visionkit.datamodules.motion.particles import ChargedParticles, simulate_charged_particles

__all__ = ["ChargedParticles", "TrajectoryDataset", "simulate_charged_particles"]
