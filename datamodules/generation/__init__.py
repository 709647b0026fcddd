"""Datamodules of the generation family."""

from visionkit.datamodules.generation.digits import Digits

__all__ = ["Digits"]
