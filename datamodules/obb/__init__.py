"""Datamodules of the obb family: synthetic oriented objects (default), DOTA, RSAR and DIOR-R, point labels, and
full-size images for sliding-window predict."""

from visionkit.datamodules.obb.dota import (
    DIORR,
    DOTA,
    RSAR,
    DOTADataset,
    OBBImageDataset,
    read_dior_xml,
    read_dota_txt,
    read_point_txt,
    read_task1,
    write_dota_txt,
    write_point_txt,
    write_task1,
)
from visionkit.datamodules.obb.points import (
    DIORRPoints,
    DOTAPoints,
    PseudoLabelDataset,
    SyntheticPointOBB,
    SyntheticPseudoOBB,
)
from visionkit.datamodules.obb.synthetic import SyntheticOBB, SyntheticOBBDataset
from visionkit.datamodules.obb.tiles import LargeImageDataset, LargeImages

__all__ = [
    "SyntheticOBB", "SyntheticOBBDataset", "DOTA", "RSAR", "DIORR", "DOTADataset", "OBBImageDataset",
    "read_dota_txt", "write_dota_txt", "read_point_txt", "write_point_txt", "read_dior_xml", "read_task1",
    "write_task1", "SyntheticPointOBB", "SyntheticPseudoOBB", "PseudoLabelDataset", "DOTAPoints", "DIORRPoints",
    "LargeImages", "LargeImageDataset",
]
