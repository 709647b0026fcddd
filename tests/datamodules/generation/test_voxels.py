"""VoxelShapes: occupancy volumes whose volumes match the primitives' closed-form volumes."""

import math

import torch

from visionkit.datamodules.generation import VoxelShapes
from visionkit.datamodules.generation.voxels import render_voxels


def test_volumes_match_closed_form():
    g = torch.Generator().manual_seed(0)
    size = 32
    vols = render_voxels(torch.arange(5).repeat_interleave(20), size, g)  # (100, 1, S, S, S)
    g = torch.Generator().manual_seed(0)
    r = (0.25 + 0.15 * torch.rand(100, generator=g)) * size
    ref = torch.stack([8 * r**3, 4 / 3 * math.pi * r**3, 2 * math.pi * r**3, 2 * math.pi * r**3 / 3,
                       2 * math.pi**2 * 0.65 * r * (0.35 * r) ** 2])  # (5, 100)
    ref = ref[torch.arange(5).repeat_interleave(20), torch.arange(100)]
    got = vols.sum((1, 2, 3, 4))
    assert ((got - ref).abs() / ref).max() < 0.2
    assert ((got - ref).abs() / ref).mean() < 0.06


def test_datamodule():
    dm = VoxelShapes(size=8, num_train=20, num_val=5, num_test=5, batch_size=4)
    dm.setup()
    b = next(iter(dm.train_dataloader()))
    assert b["image"].shape == (4, 1, 8, 8, 8) and set(b["image"].unique().tolist()) <= {0.0, 1.0}
