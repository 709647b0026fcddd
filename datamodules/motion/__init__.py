"""Datamodules of the motion family."""

from visionkit.datamodules.motion.common import TrajectoryDataset, pad_agents
from visionkit.datamodules.motion.eth_ucy import ETHUCY, read_trajectory_file, trajectory_windows
from visionkit.datamodules.motion.h36m import Human36M, expmap_to_positions, read_expmap_file
from visionkit.datamodules.motion.md17 import MD17, md17_windows, read_md17
from visionkit.datamodules.motion.particles import ChargedParticles, simulate_charged_particles

__all__ = [
    "ETHUCY",
    "MD17",
    "ChargedParticles",
    "Human36M",
    "TrajectoryDataset",
    "expmap_to_positions",
    "md17_windows",
    "pad_agents",
    "read_expmap_file",
    "read_md17",
    "read_trajectory_file",
    "simulate_charged_particles",
    "trajectory_windows",
]
