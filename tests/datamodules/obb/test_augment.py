"""Device-side OBB augmentation: exact box geometry (shapely), image/box agreement, the visible-area rule."""

import math

import pytest
import torch
from shapely import affinity
from shapely.geometry import Polygon, box

from visionkit.datamodules.obb.augment import OBBBatchAugment, rotate_batch
from visionkit.datamodules.obb.synthetic import SyntheticOBB, render_shapes
from visionkit.ops.rotated_boxes import obb2poly, points_in_obb


def _poly(b: torch.Tensor) -> Polygon:
    return Polygon(obb2poly(b[None].double())[0].view(4, 2).tolist())


def _batch(boxes: list[torch.Tensor], H: int = 64, W: int = 64) -> dict:
    return {
        "image": torch.rand(len(boxes), 3, H, W),
        "boxes": boxes,
        "gt_boxes": [b.clone() for b in boxes],
        "labels": [torch.arange(b.shape[0]) for b in boxes],
        "difficult": [torch.zeros(b.shape[0], dtype=torch.bool) for b in boxes],
        "points": [b[:, :2].clone() for b in boxes],
    }


def test_boxes_turn_exactly_as_shapely_rotates_their_polygons():
    g = torch.Generator().manual_seed(0)
    H = W = 64
    boxes = []
    for _ in range(4):  # small boxes near the centre: none leaves the image
        n = 5
        b = torch.cat([24 + 16 * torch.rand(n, 2, generator=g), 4 + 6 * torch.rand(n, 1, generator=g),
                       2 + 2 * torch.rand(n, 1, generator=g), (torch.rand(n, 1, generator=g) - 0.5) * math.pi], 1)
        boxes.append(b)
    angles = torch.tensor([0.3, -2.5, math.pi / 2, 1.0])
    out = rotate_batch(_batch(boxes, H, W), angles, min_visible=0.6)
    for b_in, b_out, a in zip(boxes, out["boxes"], angles.tolist()):
        assert b_out.shape == b_in.shape
        assert (b_out[:, 4] >= -math.pi / 2).all() and (b_out[:, 4] < math.pi / 2).all()
        for p, q in zip(b_in, b_out):
            ref = affinity.rotate(_poly(p), a, origin=(W / 2, H / 2), use_radians=True)
            assert ref.symmetric_difference(_poly(q)).area < 1e-3 * ref.area
    # points ride along with their objects
    for b_out, pts in zip(out["boxes"], out["points"]):
        torch.testing.assert_close(pts, b_out[:, :2], atol=1e-4, rtol=0)


def test_turned_image_shows_the_shape_inside_its_turned_box():
    H = W = 96
    shape = torch.tensor([[48.0, 44.0, 40.0, 14.0, 0.2]])
    img = render_shapes(torch.tensor([0]), shape, torch.ones(1, 3), torch.zeros(3, H, W))
    batch = {"image": img[None], "boxes": [shape.clone()], "labels": [torch.zeros(1, dtype=torch.long)]}
    out = rotate_batch(batch, torch.tensor([0.9]))
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    centres = torch.stack([xs.flatten(), ys.flatten()], 1)
    in_box = points_in_obb(centres, out["boxes"][0])[:, 0]
    bright = out["image"][0, 0].flatten() > 0.5
    iou = (in_box & bright).sum() / (in_box | bright).sum()
    assert iou > 0.93, float(iou)
    # the other sense of rotation would not match
    wrong = points_in_obb(centres, rotate_batch(batch, torch.tensor([-0.9]))["boxes"][0])[:, 0]
    assert (wrong & bright).sum() / (wrong | bright).sum() < 0.7


def test_objects_leaving_the_image_are_dropped_by_visible_share():
    g = torch.Generator().manual_seed(1)
    H = W = 64
    n = 200
    b = torch.cat([64 * torch.rand(n, 2, generator=g), 8 + 20 * torch.rand(n, 1, generator=g),
                   3 + 4 * torch.rand(n, 1, generator=g), (torch.rand(n, 1, generator=g) - 0.5) * math.pi], 1)
    angle = 0.7
    out = rotate_batch(_batch([b], H, W), torch.tensor([angle]), min_visible=0.6)
    frame = box(0, 0, W, H)
    expect = []
    for p in b:
        q = affinity.rotate(_poly(p), angle, origin=(W / 2, H / 2), use_radians=True)
        expect.append(q.intersection(frame).area / q.area >= 0.6)
    expect = torch.tensor(expect)
    assert 0 < int(expect.sum()) < n  # the case exercises both outcomes
    torch.testing.assert_close(out["labels"][0], torch.arange(n)[expect])
    assert out["boxes"][0].shape[0] == out["difficult"][0].shape[0] == out["points"][0].shape[0] == expect.sum()


def test_zero_angle_is_the_identity_and_point_labels_are_filtered_on_their_own():
    b = torch.tensor([[10.0, 10.0, 8.0, 4.0, 0.1]])
    batch = _batch([b, b.clone()])
    batch["points"] = [torch.tensor([[2.0, 2.0], [32.0, 32.0]]), torch.tensor([[2.0, 2.0]])]
    batch["point_labels"] = [torch.tensor([0, 1]), torch.tensor([2])]
    out = rotate_batch(batch, torch.tensor([0.0, math.pi / 4]))
    assert torch.equal(out["image"][0], batch["image"][0])
    torch.testing.assert_close(out["boxes"][0], b)
    assert out["point_labels"][0].tolist() == [0, 1]
    assert out["point_labels"][1].tolist() == []  # (2, 2) turned by 45 degrees about (32, 32) leaves the image


def test_augment_options_are_checked_and_datamodule_runs_it():
    with pytest.raises(ValueError, match="rotate_prob"):
        OBBBatchAugment(rotate_prob=1.5)
    with pytest.raises(ValueError, match="label_mode"):
        SyntheticOBB(num_train=2, num_val=1, num_test=1, image_size=32, label_mode="hbb", augment_rotate=0.5)
    dm = SyntheticOBB(num_train=4, num_val=1, num_test=1, image_size=48, batch_size=4, augment_rotate=1.0,
                      augment_jitter=0.2)
    dm.setup("fit")
    batch = dm.collate([dm.train_dataset[i] for i in range(4)])
    torch.manual_seed(0)
    out = dm.augment(batch)
    assert out["image"].shape == batch["image"].shape and not torch.equal(out["image"], batch["image"])
    assert (out["image"] >= 0).all() and (out["image"] <= 1).all()
    for k in ("boxes", "labels", "gt_boxes", "points"):
        assert [t.shape[0] for t in out[k]] == [t.shape[0] for t in out["labels"]]


def test_boxes_stacked_by_the_collate_are_turned_like_lists():
    """Equal box counts per image: the collate stacks them into one (B, N, 5) tensor."""
    g = torch.Generator().manual_seed(3)
    boxes = [torch.cat([24 + 16 * torch.rand(3, 2, generator=g), torch.tensor([[6.0, 3.0, 0.2]]).expand(3, 3)], 1)
             for _ in range(2)]
    as_lists = _batch(boxes)
    stacked = dict(as_lists)
    for k in ("boxes", "gt_boxes", "labels", "difficult", "points"):
        stacked[k] = torch.stack(as_lists[k])
    angles = torch.tensor([0.4, -1.1])
    a, b = rotate_batch(as_lists, angles), rotate_batch(stacked, angles)
    for k in ("boxes", "labels", "points"):
        for x, y in zip(a[k], b[k]):
            torch.testing.assert_close(x, y)
