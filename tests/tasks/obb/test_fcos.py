"""RotatedFCOS: side-distance geometry, target assignment, decoding and inference shapes."""

import math

import numpy as np
import pytest
import torch
from shapely.geometry import Point, Polygon

from visionkit.tasks.obb.coders import PSCCoder, UCRCoder
from visionkit.tasks.obb.fcos import RotatedFCOS, RotatedFCOSConfig, centerness_target, decode_sides, encode_sides


def _corners(b):
    cx, cy, w, h, t = b
    u = np.array([math.cos(t), math.sin(t)])
    v = np.array([-math.sin(t), math.cos(t)])
    c = np.array([cx, cy])
    return [c + w / 2 * u + h / 2 * v, c + w / 2 * u - h / 2 * v, c - w / 2 * u - h / 2 * v, c - w / 2 * u + h / 2 * v]


def _random_boxes(n, size=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = 8 + 40 * torch.rand(n, generator=g, dtype=torch.float64)
    h = w / (1.5 + 1.5 * torch.rand(n, generator=g, dtype=torch.float64))
    c = 20 + (size - 40) * torch.rand(n, 2, generator=g, dtype=torch.float64)
    t = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * math.pi
    return torch.stack([c[:, 0], c[:, 1], w, h, t], -1)


def test_encode_sides_against_shapely():
    boxes = _random_boxes(6)
    pts = torch.rand(200, 2, dtype=torch.float64) * 128
    sides = encode_sides(pts, boxes)  # (P, N, 4)
    for n in range(boxes.shape[0]):
        poly = Polygon(_corners(boxes[n].tolist()))
        for p in range(0, 200, 7):
            pt = Point(*pts[p].tolist())
            inside = bool((sides[p, n] > 0).all())
            assert inside == poly.contains(pt)
            if inside:  # nearest side distance = distance to the boundary
                assert abs(float(sides[p, n].min()) - poly.exterior.distance(pt)) < 1e-9


def test_decode_inverts_encode():
    boxes = _random_boxes(10, seed=1)
    pts = torch.rand(50, 2, dtype=torch.float64) * 128
    sides = encode_sides(pts, boxes)  # (P, N, 4)
    dec = decode_sides(pts[:, None].expand(-1, 10, -1), sides, boxes[:, 4].expand(50, -1))
    torch.testing.assert_close(dec, boxes[None].expand(50, -1, -1), atol=1e-9, rtol=0)


def test_centerness_closed_form():
    s = torch.tensor([[1.0, 2.0, 3.0, 2.0], [4.0, 4.0, 4.0, 4.0]])
    torch.testing.assert_close(centerness_target(s), torch.tensor([math.sqrt(1 / 3), 1.0]))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return RotatedFCOS(3, UCRCoder(dims=3), RotatedFCOSConfig(backbone_kwargs={"widths": (8, 16, 16, 16, 16)},
                                                              fpn_channels=16,
                                                              regress_ranges=[[0, 32], [32, 64], [64, -1]]))


def test_assignment_positives_inside_and_decode_exactly(model):
    pts, strides, levels = model.locations([(16, 16), (8, 8), (4, 4)], dtype=torch.float64)
    boxes = _random_boxes(8, seed=3)
    idx, sides = model.assign(pts, strides, levels, boxes)
    fg = idx >= 0
    assert fg.any()
    # every positive lies strictly inside its box (independent check with shapely)
    polys = [Polygon(_corners(b)) for b in boxes.tolist()]
    for p in torch.nonzero(fg).squeeze(1).tolist():
        assert polys[idx[p]].contains(Point(*pts[p].tolist()))
    # ambiguous locations go to the smallest box containing them among the candidates
    area = boxes[:, 2] * boxes[:, 3]
    inside_all = encode_sides(pts, boxes).min(-1).values > 0
    for p in torch.nonzero(fg & (inside_all.sum(1) > 1)).squeeze(1).tolist():
        assert area[idx[p]] <= area[inside_all[p]].max()
    # every box that contains a location centre gets at least one positive
    assert set(idx[fg].tolist()) == set(torch.nonzero(inside_all.any(0)).squeeze(1).tolist())
    # decoding the targets gives back the box
    dec = decode_sides(pts[fg], sides[fg], boxes[idx[fg], 4])
    torch.testing.assert_close(dec, boxes[idx[fg]], atol=1e-9, rtol=0)
    assert (sides[~fg] == 0).all()


def test_assignment_respects_scale_ranges(model):
    pts, strides, levels = model.locations([(16, 16), (8, 8), (4, 4)], dtype=torch.float64)
    boxes = torch.tensor([[64.0, 64.0, 100.0, 40.0, 0.3], [30.0, 30.0, 20.0, 10.0, -0.5]], dtype=torch.float64)
    idx, sides = model.assign(pts, strides, levels, boxes)
    big = idx == 0
    # the big box's largest side distance exceeds 32 near its centre: it lives on the coarser levels
    assert big.any() and (levels[big] >= 1).all()
    assert (sides[big].max(-1).values > 32).all()
    small = idx == 1
    assert small.any() and (levels[small] == 0).all()
    # centre sampling: positives within 1.5 strides of the centre along the box axes
    off_x = (sides[small, 0] - 10).abs()
    assert (off_x < 1.5 * strides[small]).all()


def test_assignment_without_boxes(model):
    pts, strides, levels = model.locations([(16, 16), (8, 8), (4, 4)])
    idx, sides = model.assign(pts, strides, levels, torch.zeros(0, 5))
    assert (idx == -1).all() and sides.shape == (pts.shape[0], 4)


def test_forward_and_predict_shapes():
    torch.manual_seed(0)
    m = RotatedFCOS(2, PSCCoder(dual_freq=True), RotatedFCOSConfig(
        backbone_kwargs={"widths": (8, 8, 16, 16, 16)}, fpn_channels=16, num_extra_levels=1, score_thr=0.0,
        max_det=7)).eval()
    x = torch.rand(2, 3, 64, 96)
    out = m(x)
    P = 8 * 12 + 4 * 6 + 2 * 3 + 1 * 2
    assert out["cls"].shape == (2, P, 2) and out["angle"].shape == (2, P, 6)
    assert out["dist"].shape == (2, P, 4) and (out["dist"] > 0).all()
    assert m.strides == [8, 16, 32, 64]
    dets = m.predict(x, out)
    assert len(dets) == 2
    for d in dets:
        assert d["boxes"].shape[1] == 5 and 0 < d["boxes"].shape[0] <= 7
        assert (d["boxes"][:, 2] >= d["boxes"][:, 3]).all()
        assert (d["boxes"][:, 4] >= -math.pi / 2).all() and (d["boxes"][:, 4] < math.pi / 2).all()
        assert (d["scores"][:-1] >= d["scores"][1:]).all()
