"""Datamodules of the hands family."""

from visionkit.datamodules.hands.interhand import InterHand26M, InterHandDataset
from visionkit.datamodules.hands.synthetic import SyntheticHands, SyntheticHandsDataset

__all__ = ["InterHand26M", "InterHandDataset", "SyntheticHands", "SyntheticHandsDataset"]
