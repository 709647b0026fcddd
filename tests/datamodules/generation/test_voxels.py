"""VoxelShapes: occupancy volumes whose volumes match the primitives' closed-form volumes."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from visionkit.datamodules.generation import VoxelShapes
from visionkit.datamodules.generation.voxels import render_voxels
from visionkit.errors import DataError, DatasetNotFoundError


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


def test_root_reads_npz_splits_and_names_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    vox = {s: rng.integers(0, 2, (n, 4, 6, 8), dtype=np.uint8) for s, n in (("train", 6), ("val", 3))}
    lab = {"train": np.array([0, 1, 2, 6, 1, 0]), "val": np.array([2, 1, 0])}
    for s in vox:
        np.savez(tmp_path / f"{s}.npz", voxels=vox[s], labels=lab[s])
    dm = VoxelShapes(root=str(tmp_path), batch_size=4)
    dm.setup("fit")
    assert dm.num_classes == 7 and len(dm.train_dataset) == 6 and dm.test_dataset is dm.val_dataset
    s = dm.train_dataset[3]
    assert torch.equal(s["image"], torch.from_numpy(vox["train"][3]).float()[None]) and s["label"].item() == 6
    b = next(iter(dm.val_dataloader()))
    assert b["image"].shape == (3, 1, 4, 6, 8)
    np.savez(tmp_path / "test.npz", voxels=vox["val"][:, :2], labels=lab["val"])
    with pytest.raises(DataError, match=r"test\.npz.*differ"):
        VoxelShapes(root=str(tmp_path)).setup()
    np.savez(tmp_path / "test.npz", voxels=vox["val"])
    with pytest.raises(DataError, match=r"test\.npz.*'labels'"):
        VoxelShapes(root=str(tmp_path)).setup()
    with pytest.raises(DatasetNotFoundError, match="data.init_args.root"):
        VoxelShapes(root=str(tmp_path / "nope")).setup()


def test_root_via_the_cli_config_builds(tmp_path):
    from visionkit.cli import main

    rng = np.random.default_rng(1)
    for s, n in (("train", 8), ("val", 4)):
        np.savez(tmp_path / f"{s}.npz", voxels=rng.integers(0, 2, (n, 8, 8, 8)).astype(bool),
                 labels=rng.integers(0, 5, n))
    config = Path(__file__).resolve().parents[3] / "configs" / "generation" / "voxels_nar.yaml"
    cli = main(["fit", "--config", str(config), "--data.init_args.root", str(tmp_path),
          "--trainer.fast_dev_run", "1", "--trainer.default_root_dir", str(tmp_path / "run"),
          "--trainer.callbacks", "[]", "--model.init_args.dim", "16", "--model.init_args.depth", "1"])
    assert cli.trainer.state.finished and len(cli.datamodule.train_dataset) == 8
