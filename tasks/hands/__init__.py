"""Two-hand 3D reconstruction."""

from visionkit.tasks.hands.dir import DIRNet
from visionkit.tasks.hands.mano import MANOLayer
from visionkit.tasks.hands.procedural import HandOutput, ProceduralHandLayer
from visionkit.tasks.hands.reconstruction import HandReconstructionTask

__all__ = ["DIRNet", "HandOutput", "HandReconstructionTask", "MANOLayer", "ProceduralHandLayer"]
