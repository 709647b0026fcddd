"""SyntheticHands: determinism, exact projections, visibility consistent with the z-buffer, batch keys."""

import torch

from visionkit.datamodules.hands.synthetic import SyntheticHands, generate_hands


def test_deterministic_and_projection_exact():
    a, b = generate_hands(24, seed=5), generate_hands(24, seed=5)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["joints3d"], b["joints3d"])
    c = generate_hands(24, seed=6)
    assert not torch.equal(a["joints3d"], c["joints3d"])
    uvw = a["joints3d"] @ a["K"].transpose(1, 2)
    assert torch.allclose(a["joints2d"], uvw[..., :2] / uvw[..., 2:], atol=1e-4)
    assert (a["joints3d"][..., 2] > 300).all()


def test_visibility_agrees_with_masks_and_hands_occlude():
    d = generate_hands(64, seed=1)
    vis = d["joint_visible"]
    assert 0.3 < vis.float().mean() < 0.98  # some joints are hidden by the other hand or by the hand itself
    uv = d["joints2d"].floor().long().clamp(0, 127)
    label = d["mask"][torch.arange(64)[:, None], uv[..., 1], uv[..., 0]]  # (64, 42)
    own = torch.cat([torch.ones(21), torch.full((21,), 2)]).long()
    # visible joints lie on their own hand's pixels
    assert (label[vis] == own.expand(64, -1)[vis]).float().mean() > 0.95
    # the two hands overlap in image space in a good share of the samples (mutual occlusion happens)
    right_over_left = (~vis[:, 21:] & (label[:, 21:] == 1)).any(1)
    left_over_right = (~vis[:, :21] & (label[:, :21] == 2)).any(1)
    assert (right_over_left | left_over_right).float().mean() > 0.2


def test_datamodule_batches():
    dm = SyntheticHands(num_train=16, num_val=8, num_test=8, batch_size=4, seed=0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 128, 128) and batch["image"].dtype == torch.float32
    assert 0 <= batch["image"].min() and batch["image"].max() <= 1
    assert batch["joints3d"].shape == (4, 42, 3) and batch["joints2d"].shape == (4, 42, 2)
    assert batch["K"].shape == (4, 3, 3) and batch["joint_valid"].shape == (4, 42)
    assert batch["mask"].shape == (4, 2, 128, 128) and batch["hand_type"].shape == (4, 2)
    # right joints are 0-20 and left 21-41: the right hand is placed to the +x side on average
    dm2 = SyntheticHands(num_train=64, num_val=4, num_test=4, seed=0)
    dm2.setup("fit")
    j = dm2.train_dataset.data["joints3d"]
    assert (j[:, :21, 0].mean(1) > j[:, 21:, 0].mean(1)).float().mean() > 0.8
