"""visionkit tasks: one LightningModule per learning problem, grouped by family.

Importing this package imports every family so that their tasks resolve by short class name in configs.
"""

from visionkit.tasks import generation, hands, motion, obb, pointcloud
from visionkit.tasks.base import BaseTask

__all__ = ["BaseTask", "generation", "hands", "motion", "obb", "pointcloud"]
