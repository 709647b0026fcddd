"""Datamodules of the generation family."""

from visionkit.datamodules.generation.digits import Digits
from visionkit.datamodules.generation.image_folder import ImageFolder
from visionkit.datamodules.generation.shapes import SyntheticShapes
from visionkit.datamodules.generation.tokens import GenerationDataModule
from visionkit.datamodules.generation.voxels import VoxelShapes

__all__ = ["Digits", "GenerationDataModule", "ImageFolder", "SyntheticShapes", "VoxelShapes"]
