"""SyntheticOBB: analytic labels checked against the rendered pixels, determinism, label modes, batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from shapely.geometry import Point, Polygon

from visionkit.datamodules.obb.augment import flip_rotate_batch
from visionkit.datamodules.obb.synthetic import SyntheticOBB, SyntheticOBBDataset, generate_image, render_shapes
from visionkit.ops.rotated_boxes import box_iou_rotated, obb2poly, points_in_obb

torch.set_num_threads(1)  # the machine is shared: no thread oversubscription


def _render_single(kind: int, box, tri_axis=False, tri_sign=1.0, size=96):
    params = torch.tensor([box], dtype=torch.float64)
    img = render_shapes(torch.tensor([kind]), params, torch.ones(1, 3), torch.zeros(3, size, size),
                        torch.tensor([tri_axis]), torch.tensor([tri_sign]))
    return img[0].numpy()  # coverage in [0, 1]


def _box_polygon(box) -> Polygon:
    return Polygon(obb2poly(torch.tensor([box], dtype=torch.float64))[0].reshape(4, 2).numpy())


@pytest.mark.parametrize("box", [(40.3, 47.7, 50.0, 20.0, 0.0), (48.0, 45.0, 44.0, 17.0, 0.61),
                                 (50.5, 50.0, 36.0, 12.0, -1.2), (48.0, 48.0, 54.0, 36.0, math.pi / 4)])
def test_rectangle_label_fits_rendered_mask(box):
    cov = _render_single(0, box)
    poly = _box_polygon(box)
    ii, jj = np.nonzero(cov > 0.5)
    inside = [poly.buffer(1e-6).contains(Point(j + 0.5, i + 0.5)) for i, j in zip(ii, jj)]
    assert all(inside)  # every pixel mostly covered has its centre in the box polygon
    assert cov.sum() == pytest.approx(poly.area, rel=0.02)  # anti-aliased coverage integrates to the area
    # and the mask reaches the box sides: the covered pixels' centres span the box up to a pixel
    u = (jj + 0.5 - box[0]) * math.cos(box[4]) + (ii + 0.5 - box[1]) * math.sin(box[4])
    assert u.max() == pytest.approx(box[2] / 2, abs=1.0) and u.min() == pytest.approx(-box[2] / 2, abs=1.0)


def test_ellipse_and_triangle_areas_and_tight_boxes():
    box = (48.0, 48.0, 60.0, 24.0, 0.4)
    ell = _render_single(1, box)
    assert ell.sum() == pytest.approx(math.pi * 30 * 12, rel=0.02)
    for axis in (False, True):
        for sign in (1.0, -1.0):
            tri = _render_single(2, box, axis, sign)
            assert tri.sum() == pytest.approx(60 * 24 / 2, rel=0.03)
            # the triangle is tight in its box: touched pixels reach all four sides of the box frame (the thin
            # apex only covers small pixel fractions), and no pixel outside the box is touched
            ii, jj = np.nonzero(tri > 0.01)
            x, y = jj + 0.5 - box[0], ii + 0.5 - box[1]
            u = x * math.cos(box[4]) + y * math.sin(box[4])
            v = -x * math.sin(box[4]) + y * math.cos(box[4])
            assert u.max() == pytest.approx(30, abs=2) and u.min() == pytest.approx(-30, abs=2)
            assert v.max() == pytest.approx(12, abs=2) and v.min() == pytest.approx(-12, abs=2)
            assert np.all(np.abs(u) <= 31) and np.all(np.abs(v) <= 13)


def test_generated_labels_are_valid_and_separated():
    ds = SyntheticOBBDataset(40, seed=3, max_objects=6)
    n_obj = 0
    for i in range(len(ds)):
        s = ds[i]
        b = s["gt_boxes"]
        n_obj += b.shape[0]
        assert torch.all(b[:, 2] >= 1.5 * b[:, 3] - 1e-4)  # aspect >= 1.5, w >= h
        assert torch.all((b[:, 4] >= -math.pi / 2) & (b[:, 4] < math.pi / 2))
        poly = obb2poly(b).reshape(-1, 4, 2)
        assert torch.all(poly >= -1e-3) and torch.all(poly <= 128 + 1e-3)  # inside the image
        if b.shape[0] > 1:  # limited overlap between the objects' boxes
            iou = box_iou_rotated(b.double(), b.double())
            iou.fill_diagonal_(0)
            assert iou.max() < 0.5
        assert s["image"].shape == (3, 128, 128) and s["image"].dtype == torch.uint8
        # the object's colour differs from the background inside its box centre region
    assert n_obj / len(ds) > 2.5


def test_deterministic_and_independent_of_size():
    a = SyntheticOBBDataset(5, split="train", seed=1)
    b = SyntheticOBBDataset(8, split="train", seed=1)
    c = SyntheticOBBDataset(5, split="val", seed=1)
    for i in range(5):
        assert torch.equal(a[i]["image"], b[i]["image"]) and torch.equal(a[i]["gt_boxes"], b[i]["gt_boxes"])
    assert not torch.equal(a[0]["image"], c[0]["image"])


def test_label_modes_and_points():
    kw = dict(n=12, seed=2)
    obb = SyntheticOBBDataset(label_mode="obb", **kw)
    hbb = SyntheticOBBDataset(label_mode="hbb", **kw)
    pts = SyntheticOBBDataset(label_mode="point", point_mode="random", **kw)
    pts2 = SyntheticOBBDataset(label_mode="point", point_mode="random", **kw)
    for i in range(12):
        o, h, p = obb[i], hbb[i], pts[i]
        assert torch.equal(o["image"], p["image"]) and torch.equal(o["gt_boxes"], h["gt_boxes"])
        assert torch.allclose(o["points"], o["gt_boxes"][:, :2])  # centre mode
        # random points: inside their own true box, the same every time
        inside = points_in_obb(p["points"].double(), p["gt_boxes"].double())
        assert bool(inside.diagonal().all())
        assert torch.equal(p["points"], pts2[i]["points"])
        assert torch.equal(p["boxes"][:, :2], p["points"]) and torch.all(p["boxes"][:, 2:] == 0)
        # hbb: horizontal, containing the OBB's polygon of rectangles exactly, shapes tighter or equal
        hb = h["boxes"]
        assert torch.all((hb[:, 4] == 0) | (hb[:, 4] == -math.pi / 2))
        poly = obb2poly(o["gt_boxes"]).reshape(-1, 4, 2)
        x1, y1 = poly[..., 0].amin(1), poly[..., 1].amin(1)
        x2, y2 = poly[..., 0].amax(1), poly[..., 1].amax(1)
        hx = h["hboxes"]
        assert torch.all(hx[:, 0] >= x1 - 1e-3) and torch.all(hx[:, 2] <= x2 + 1e-3)
        assert torch.all(hx[:, 1] >= y1 - 1e-3) and torch.all(hx[:, 3] <= y2 + 1e-3)
        rect = o["labels"] == 0
        assert torch.allclose(hx[rect], torch.stack([x1, y1, x2, y2], 1)[rect], atol=1e-3)


def test_flip_rotate_batch_matches_polygon_transform():
    dm = SyntheticOBB(num_train=4, num_val=2, num_test=2, batch_size=4, label_mode="obb", point_mode="random")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        out = flip_rotate_batch(batch, generator=g, rot90_prob=0.9)
        for b in range(4):
            img0, img1 = batch["image"][b], out["image"][b]
            # find the transform from the image itself (exact pixel permutation), then check the labels
            W = img0.shape[-1]
            cands = {}
            for hf in (0, 1):
                for vf in (0, 1):
                    for k in range(4):
                        t = img0.flip(-1) if hf else img0
                        t = t.flip(-2) if vf else t
                        cands[(hf, vf, k)] = torch.rot90(t, -k, dims=(-2, -1))
            key = next(k for k, v in cands.items() if torch.equal(v, img1))
            hf, vf, k = key

            def move(pts, hf=hf, vf=vf, k=k, W=W):  # (M, 2) points under the same transform
                x, y = pts[:, 0].clone(), pts[:, 1].clone()
                if hf:
                    x = W - x
                if vf:
                    y = W - y
                for _ in range(k):
                    x, y = W - y, x
                return torch.stack([x, y], -1)

            src = obb2poly(batch["gt_boxes"][b].double()).reshape(-1, 4, 2)
            moved = move(src.reshape(-1, 2)).reshape(-1, 4, 2)
            got = obb2poly(out["gt_boxes"][b].double()).reshape(-1, 4, 2)
            # same corner sets (order may differ)
            d = torch.cdist(moved, got).amin(-1).amax()
            assert d < 1e-3
            assert torch.allclose(move(batch["points"][b].double()), out["points"][b].double(), atol=1e-4)
            assert torch.all(out["gt_boxes"][b][:, 4] < math.pi / 2) and torch.all(
                out["gt_boxes"][b][:, 4] >= -math.pi / 2)


def test_datamodule_batches_and_options():
    dm = SyntheticOBB(num_train=6, num_val=4, num_test=4, batch_size=3, image_size=64, min_size=12, max_size=30)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (3, 3, 64, 64)
    assert isinstance(batch["boxes"], list) and batch["boxes"][0].shape[1] == 5
    assert batch["orig_size"].tolist() == [[64, 64]] * 3
    for key in ("labels", "difficult", "points", "gt_boxes", "image_id"):
        assert len(batch[key]) == 3
    assert dm.num_classes == 3 and dm.class_names == ["rectangle", "ellipse", "triangle"]
    with pytest.raises(ValueError, match="label_mode"):
        SyntheticOBB(label_mode="mask")
    with pytest.raises(ValueError, match="aspect_range"):
        SyntheticOBB(aspect_range=(1.0, 2.0))


def test_generation_is_fast():
    import time

    t = time.perf_counter()
    SyntheticOBBDataset(100)
    assert time.perf_counter() - t < 10.0  # ~2-6 ms per image; 1000 images take seconds


def test_generate_image_respects_size_range():
    g = torch.Generator().manual_seed(0)
    out = generate_image(g, 100, 100, 8, 20.0, 30.0, (2.0, 2.5), torch.tensor([0, 1, 2]), 0.1, 0.0)
    assert torch.all((out["boxes"][:, 2] >= 20) & (out["boxes"][:, 2] <= 30))
    ratio = out["boxes"][:, 2] / out["boxes"][:, 3]
    assert torch.all((ratio >= 2.0 - 1e-4) & (ratio <= 2.5 + 1e-4))
