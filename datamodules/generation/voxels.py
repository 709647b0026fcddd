"""``VoxelShapes``: seeded binary voxel volumes of 3D primitives for the 3D (t + i + j) NAR variant."""

from __future__ import annotations

from typing import Any

import torch

from visionkit.datamodules.generation.digits import TensorImageDataset
from visionkit.datamodules.generation.tokens import GenerationDataModule

__all__ = ["VOXEL_SHAPES", "VoxelShapes", "render_voxels"]

VOXEL_SHAPES = ("cube", "sphere", "cylinder", "cone", "torus")


def render_voxels(labels: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """One random primitive per label -> occupancy ``(n, 1, size, size, size)`` in {0, 1} (axes z, y, x)."""
    n = labels.numel()
    r = (0.25 + 0.15 * torch.rand(n, generator=generator)) * size
    centre = r.unsqueeze(1) + torch.rand(n, 3, generator=generator) * (size - 2 * r).unsqueeze(1)  # (n, 3) z, y, x
    c = torch.arange(size, dtype=torch.float32) + 0.5
    dz = c.view(1, -1, 1, 1) - centre[:, 0].view(-1, 1, 1, 1)
    dy = c.view(1, 1, -1, 1) - centre[:, 1].view(-1, 1, 1, 1)
    dx = c.view(1, 1, 1, -1) - centre[:, 2].view(-1, 1, 1, 1)
    r = r.view(-1, 1, 1, 1)
    rho = (dx**2 + dy**2).sqrt()
    shapes = torch.stack([
        (dz.abs() <= r) & (dy.abs() <= r) & (dx.abs() <= r),
        dx**2 + dy**2 + dz**2 <= r**2,
        (rho <= r) & (dz.abs() <= r),
        (dz.abs() <= r) & (rho <= (dz + r) / 2),  # apex at low z, base of radius r at high z
        (rho - 0.65 * r) ** 2 + dz**2 <= (0.35 * r) ** 2,
    ], 1)  # (n, 5, D, H, W)
    out = shapes.gather(1, labels.view(-1, 1, 1, 1, 1).expand(-1, 1, size, size, size))
    return out.float()


class VoxelShapes(GenerationDataModule):
    """Binary occupancy volumes ``image (1, S, S, S)`` of cube / sphere / cylinder / cone / torus (5 classes).

    Tokenised with ``PixelQuantizer(levels=2)``; the NAR ordering over ``(S, S, S)`` decodes in ``3S - 2``
    passes (``S**3`` for raster).

    Args:
        size: volume side.
        num_train, num_val, num_test: split sizes.
        data_seed: seed of the volumes.
    """

    num_classes = len(VOXEL_SHAPES)

    def __init__(self, size: int = 8, num_train: int = 2000, num_val: int = 200, num_test: int = 400,
                 data_seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size, self.sizes, self.data_seed = size, (num_train, num_val, num_test), data_seed

    def cache_key(self) -> str:
        return f"voxels|{self.size}|{self.sizes}|{self.data_seed}"

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        splits = []
        for k, n in enumerate(self.sizes):
            g = torch.Generator().manual_seed(self.data_seed * 1000 + k)
            labels = (torch.arange(n) % self.num_classes)[torch.randperm(n, generator=g)]
            splits.append(TensorImageDataset(render_voxels(labels, self.size, g), labels))
        self.train_dataset, self.val_dataset, self.test_dataset = splits
        self.attach_tokens()
