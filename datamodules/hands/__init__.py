"""Datamodules of the hands family."""

from visionkit.datamodules.hands.synthetic import SyntheticHands, SyntheticHandsDataset

__all__ = ["SyntheticHands", "SyntheticHandsDataset"]
