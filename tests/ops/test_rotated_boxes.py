"""Rotated-box geometry against independent references: shapely polygons, numpy formulas, torchvision's op."""

import math

import numpy as np
import pytest
import shapely
import torch
import torchvision

from visionkit.ops import rotated_boxes as rb
from visionkit.ops.rotated_boxes import (
    batched_nms_rotated,
    box_iou_rotated,
    hbb2obb,
    nms_rotated,
    obb2corners,
    obb2hbb,
    obb2poly,
    obb_from_torchvision,
    obb_to_torchvision,
    point_to_obb_sides,
    points_in_obb,
    poly2obb,
    regularize_obb,
    rotated_iou_loss,
)


# ------------------------------------------------------------------------------------------- references
def np_corners(boxes) -> np.ndarray:
    """The corner convention written out in numpy: c+v1+v2, c+v1-v2, c-v1-v2, c-v1+v2."""
    b = np.asarray(boxes, dtype=np.float64)
    c = b[:, None, :2]
    t = b[:, 4]
    v1 = np.stack([b[:, 2] / 2 * np.cos(t), b[:, 2] / 2 * np.sin(t)], -1)[:, None]
    v2 = np.stack([-b[:, 3] / 2 * np.sin(t), b[:, 3] / 2 * np.cos(t)], -1)[:, None]
    return np.concatenate([c + v1 + v2, c + v1 - v2, c - v1 - v2, c - v1 + v2], axis=1)


def polygons(boxes) -> np.ndarray:
    return shapely.polygons(np_corners(boxes))


def shapely_iou(b1, b2, mode="iou", aligned=False) -> np.ndarray:
    p1, p2 = polygons(b1), polygons(b2)
    if not aligned:
        p1, p2 = p1[:, None], p2[None, :]
    inter = shapely.area(shapely.intersection(p1, p2))
    a1, a2 = shapely.area(p1), shapely.area(p2)
    den = a1 if mode == "iof" else a1 + a2 - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, inter / np.where(den > 0, den, 1), 0.0)


def random_boxes(n, gen, dtype=torch.float64, span=30.0, size=(0.5, 12.0)):
    c = torch.rand(n, 2, generator=gen, dtype=dtype) * span
    wh = torch.rand(n, 2, generator=gen, dtype=dtype) * (size[1] - size[0]) + size[0]
    t = (torch.rand(n, 1, generator=gen, dtype=dtype) - 0.5) * 4 * math.pi
    return torch.cat([c, wh, t], dim=1)


def same_polygon(b1, b2, atol=1e-9) -> bool:
    """Equal rectangles: every corner of one is a corner of the other."""
    c1, c2 = np_corners(b1), np_corners(b2)
    d = np.linalg.norm(c1[:, :, None] - c2[:, None], axis=-1)  # (N, 4, 4)
    return bool((d.min(-1) < atol).all() and (d.min(-2) < atol).all())


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


# ------------------------------------------------------------------------------------------- conversions
def test_obb2poly_convention(gen):
    b = random_boxes(50, gen)
    np.testing.assert_allclose(obb2poly(b).numpy(), np_corners(b).reshape(-1, 8), rtol=0, atol=1e-12)
    assert obb2corners(b).shape == (50, 4, 2)
    # clockwise-positive in image coordinates: a small positive angle moves the width axis towards +y (down)
    c = obb2corners(torch.tensor([[0.0, 0.0, 2.0, 0.0, 0.1]], dtype=torch.float64))[0]
    assert c[0, 1] > 0 and c[0, 0] > 0


@pytest.mark.parametrize("version", ["le90", "le135", "oc"])
def test_regularize_ranges_and_same_polygon(gen, version):
    b = random_boxes(400, gen)
    b[:5, 4] = torch.tensor([-math.pi / 2, math.pi / 2, 0.0, -math.pi / 4, 3 * math.pi / 4], dtype=torch.float64)
    r = regularize_obb(b, version)
    assert same_polygon(b.numpy(), r.numpy())
    t = r[:, 4]
    if version == "le90":
        assert bool((t >= -math.pi / 2).all() and (t < math.pi / 2).all() and (r[:, 2] >= r[:, 3]).all())
    elif version == "le135":
        assert bool((t >= -math.pi / 4).all() and (t < 3 * math.pi / 4).all() and (r[:, 2] >= r[:, 3]).all())
    else:
        assert bool((t > 0).all() and (t <= math.pi / 2).all())
    np.testing.assert_allclose(regularize_obb(r, version).numpy(), r.numpy(), atol=1e-12)


def mm_norm_angle(a, version):
    """mmrotate's norm_angle."""
    if version == "le135":
        return (a + np.pi / 4) % np.pi - np.pi / 4
    return (a + np.pi / 2) % np.pi - np.pi / 2


def mm_poly2obb_le90(polys):
    """mmrotate's poly2obb_le90 (exact for rectangles), written out in numpy."""
    p = np.asarray(polys, dtype=np.float64).reshape(-1, 4, 2)
    pt1, pt2, pt3, pt4 = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
    edge1 = np.hypot(*(pt1 - pt2).T)
    edge2 = np.hypot(*(pt2 - pt3).T)
    angles1 = np.arctan2(pt2[:, 1] - pt1[:, 1], pt2[:, 0] - pt1[:, 0])
    angles2 = np.arctan2(pt4[:, 1] - pt1[:, 1], pt4[:, 0] - pt1[:, 0])
    angles = np.where(edge1 > edge2, angles1, angles2)
    angles = mm_norm_angle(angles, "le90")
    ctr = (pt1 + pt3) / 2
    return np.stack([ctr[:, 0], ctr[:, 1], np.maximum(edge1, edge2), np.minimum(edge1, edge2), angles], -1)


def mm_regular_le90(b):
    """mmrotate's regular_obb (le90)."""
    x, y, w, h, t = np.asarray(b, dtype=np.float64).T
    wr, hr = np.where(w > h, w, h), np.where(w > h, h, w)
    tr = mm_norm_angle(np.where(w > h, t, t + np.pi / 2), "le90")
    return np.stack([x, y, wr, hr, tr], -1)


def mm_hbb2obb_le90(xyxy):
    x1, y1, x2, y2 = np.asarray(xyxy, dtype=np.float64).T
    x, y, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    o1 = np.stack([x, y, w, h, np.zeros_like(x)], -1)
    o2 = np.stack([x, y, h, w, np.zeros_like(x) - np.pi / 2], -1)
    return np.where((w >= h)[:, None], o1, o2)


def mm_oc(b):
    """mmrotate's oc rule (OpenCV < 4.5.1): while not 0 < a <= 90: a += 90 and swap w, h."""
    out = []
    for x, y, w, h, t in np.asarray(b, dtype=np.float64):
        a = math.degrees(t)
        assert -90 <= a < 0
        while not 0 < a <= 90:
            if a == -90:
                a += 180
            else:
                a += 90
                w, h = h, w
        out.append([x, y, w, h, math.radians(a)])
    return np.array(out)


def test_le90_matches_mmrotate_formulas(gen):
    b = random_boxes(300, gen)
    b[:, 2] = b[:, 3] + 0.1 + b[:, 2]  # w > h strictly: no square ambiguity
    b = b[(torch.remainder(b[:, 4] + math.pi / 2, math.pi) - 1e-6).abs() > 1e-6]  # away from the +-pi/2 seam
    polys = obb2poly(b)
    ours = poly2obb(polys, "le90").numpy()
    np.testing.assert_allclose(ours, mm_poly2obb_le90(polys.numpy()), rtol=0, atol=1e-9)
    sw = b[:, [0, 1, 3, 2, 4]].clone()  # h > w: must swap and turn by pi/2
    np.testing.assert_allclose(regularize_obb(sw, "le90").numpy(), mm_regular_le90(sw.numpy()), atol=1e-12)
    np.testing.assert_allclose(regularize_obb(b, "le90").numpy(), mm_regular_le90(b.numpy()), atol=1e-12)
    # le135 / oc against the published rules
    le135 = regularize_obb(b, "le135").numpy()
    np.testing.assert_allclose(le135[:, 4], mm_norm_angle(b[:, 4].numpy(), "le135"), atol=1e-12)
    cv = b.clone()  # OpenCV's minAreaRect angles before 4.5.1 lie in [-90, 0) degrees
    cv[:, 4] = -torch.rand(len(cv), generator=gen, dtype=torch.float64) * math.pi / 2
    cv[:3, 4] = torch.tensor([-math.pi / 2, -1e-3, -math.pi / 4], dtype=torch.float64)
    np.testing.assert_allclose(regularize_obb(cv, "oc").numpy(), mm_oc(cv.numpy()), atol=1e-9)
    xyxy = torch.tensor([[0.0, 0.0, 4.0, 2.0], [1.0, 1.0, 2.0, 5.0], [3.0, 3.0, 4.0, 4.0]], dtype=torch.float64)
    np.testing.assert_allclose(hbb2obb(xyxy, "le90").numpy(), mm_hbb2obb_le90(xyxy.numpy()), atol=1e-12)
    oc = hbb2obb(xyxy, "oc").numpy()
    np.testing.assert_allclose(oc[1], [1.5, 3.0, 4.0, 1.0, math.pi / 2], atol=1e-12)  # theta 0 -> pi/2, w, h swap


def test_poly2obb_recovers_rectangles(gen):
    b = random_boxes(300, gen)
    polys = obb2poly(b)
    perm = torch.roll(polys.view(-1, 4, 2), 1, dims=1)[:, [3, 2, 1, 0]]  # other start, other orientation
    for p in (polys, perm.reshape(-1, 8)):
        for version in ("le90", "le135", "oc"):
            assert same_polygon(poly2obb(p, version).numpy(), b.numpy(), atol=1e-9)


def test_poly2obb_min_area_of_random_quads(gen):
    q = torch.rand(500, 8, generator=gen, dtype=torch.float64) * 20
    ours = poly2obb(q)
    ours_poly = polygons(ours.numpy())
    quad_hull = shapely.convex_hull(shapely.multipoints(q.view(-1, 4, 2).numpy()))
    ref = shapely.oriented_envelope(quad_hull)  # shapely's minimum_rotated_rectangle
    area = ours[:, 2] * ours[:, 3]
    np.testing.assert_allclose(area.numpy(), shapely.area(ref), rtol=1e-9, atol=1e-9)
    # and it encloses the quadrilateral
    assert np.all(shapely.area(shapely.difference(quad_hull, ours_poly)) < 1e-9)


def test_obb2hbb_and_torchvision_adapter(gen):
    b = random_boxes(100, gen)
    np.testing.assert_allclose(obb2hbb(b).numpy(), shapely.bounds(polygons(b)), atol=1e-12)
    tv = obb_to_torchvision(b)
    tv_corners = torchvision.ops.box_convert(tv, "cxcywhr", "xyxyxyxy").view(-1, 4, 2).numpy()
    ours = np_corners(b)
    d = np.linalg.norm(tv_corners[:, :, None] - ours[:, None], axis=-1)
    assert d.min(-1).max() < 1e-9  # same rectangles
    np.testing.assert_allclose(obb_from_torchvision(tv).numpy(), b.numpy(), atol=1e-12)


# ------------------------------------------------------------------------------------------------- IoU
@pytest.mark.parametrize("mode", ["iou", "iof"])
def test_iou_random_float64(gen, mode):
    b1, b2 = random_boxes(150, gen), random_boxes(170, gen)
    ours = box_iou_rotated(b1, b2, mode=mode)
    ref = shapely_iou(b1, b2, mode)
    assert ours.dtype == torch.float64 and ours.shape == (150, 170)
    assert (ref > 0).mean() > 0.1  # a meaningful share of overlapping pairs
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=1e-9)


def test_iou_random_float32_dota_scale(gen):
    b1 = random_boxes(200, gen, span=1024.0, size=(4.0, 120.0))
    b2 = random_boxes(200, gen, span=1024.0, size=(4.0, 120.0))
    b2[:100, :2] = b1[:100, :2] + torch.randn(100, 2, generator=gen, dtype=torch.float64) * 5
    b1f, b2f = b1.float(), b2.float()
    ref = shapely_iou(b1f.double(), b2f.double())
    ours = box_iou_rotated(b1f, b2f)
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=1e-4)
    iof = box_iou_rotated(b1f, b2f, mode="iof")
    np.testing.assert_allclose(iof.numpy(), shapely_iou(b1f.double(), b2f.double(), "iof"), rtol=0, atol=1e-4)


def special_pairs(gen):
    """Pairs (b1, b2) of hard configurations."""
    b = random_boxes(40, gen)
    t, w, h = b[:, 4], b[:, 2], b[:, 3]
    ux, uy = torch.cos(t), torch.sin(t)  # width axis
    vx, vy = -torch.sin(t), torch.cos(t)  # height axis
    pairs = [(b, b.clone())]  # identical
    pairs.append((b, torch.stack([b[:, 0], b[:, 1], h, w, t + math.pi / 2], 1)))  # swapped w/h, theta + pi/2
    pairs.append((b, b + torch.tensor([0, 0, 0, 0, math.pi], dtype=torch.float64)))  # theta + pi
    shift_h = torch.stack([b[:, 0] + h * vx, b[:, 1] + h * vy, w, h, t], 1)  # touching along a long edge
    pairs.append((b, shift_h))
    shift_w = torch.stack([b[:, 0] + w * ux, b[:, 1] + w * uy, w, h, t], 1)
    pairs.append((b, shift_w))
    half = torch.stack([b[:, 0] + 0.5 * w * ux, b[:, 1] + 0.5 * w * uy, w, h, t], 1)  # half overlap, same angle
    pairs.append((b, half))
    corner = torch.stack([b[:, 0] + w * ux + h * vx, b[:, 1] + w * uy + h * vy, w, h, t], 1)  # corner touch
    pairs.append((b, corner))
    nested = torch.stack([b[:, 0], b[:, 1], 0.5 * w, 0.3 * h, t], 1)  # strictly inside
    pairs.append((b, nested))
    # nested touching an inner edge: same width axis, shifted so the long edges coincide
    inner = torch.stack([b[:, 0] + 0.25 * h * vx, b[:, 1] + 0.25 * h * vy, w, 0.5 * h, t], 1)
    pairs.append((b, inner))
    pairs.append((b, torch.stack([b[:, 0], b[:, 1], w, h, t + math.pi / 4], 1)))  # 45 degrees about the centre
    far = b.clone()
    far[:, 0] += 1000
    pairs.append((b, far))  # far apart
    axis = torch.tensor([[0.0, 0, 4, 2, 0], [0, 0, 4, 2, 0], [2, 0, 4, 2, 0], [0, 0, 2, 2, 0]], dtype=torch.float64)
    axis2 = torch.tensor([[4.0, 0, 4, 2, 0], [0, 2, 4, 2, 0], [2, 0, 4, 2, 0], [1, 1, 2, 2, math.pi / 2]],
                         dtype=torch.float64)
    pairs.append((axis, axis2))  # exact touching / identical / shared-corner axis-aligned cases
    return pairs


def test_iou_special_cases(gen):
    for b1, b2 in special_pairs(gen):
        for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 1e-4)):
            x1, x2 = b1.to(dtype), b2.to(dtype)
            ref = shapely_iou(x1.double(), x2.double(), aligned=True)
            ours = box_iou_rotated(x1, x2, aligned=True)
            np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=tol)
            full = box_iou_rotated(x1, x2)
            np.testing.assert_allclose(torch.diagonal(full).numpy(), ref, rtol=0, atol=tol)
    b = random_boxes(10, gen)
    np.testing.assert_allclose(box_iou_rotated(b, b, aligned=True).numpy(), 1.0, atol=1e-12)


def test_iou_degenerate_boxes_no_nan(gen):
    b = random_boxes(20, gen)
    deg = b.clone()
    deg[:7, 2] = 0
    deg[7:14, 3] = 0
    deg[14:, 2:4] = 0
    for x1, x2 in ((deg, b), (b, deg), (deg, deg)):
        for mode in ("iou", "iof"):
            ours = box_iou_rotated(x1, x2, mode=mode)
            assert torch.isfinite(ours).all()
            np.testing.assert_allclose(ours.numpy(), shapely_iou(x1, x2, mode), atol=1e-12)
    assert (box_iou_rotated(deg, deg, aligned=True) == 0).all()


def test_aligned_matches_pairwise_and_empty(gen):
    b1, b2 = random_boxes(60, gen), random_boxes(60, gen)
    np.testing.assert_allclose(box_iou_rotated(b1, b2, aligned=True).numpy(),
                               torch.diagonal(box_iou_rotated(b1, b2)).numpy(), atol=0)
    assert box_iou_rotated(b1[:0], b2).shape == (0, 60)
    assert box_iou_rotated(b1, b2[:0]).shape == (60, 0)
    assert box_iou_rotated(b1[:0], b2[:0], aligned=True).shape == (0,)
    with pytest.raises(ValueError, match="aligned"):
        box_iou_rotated(b1, b2[:5], aligned=True)
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        box_iou_rotated(b1[:, :4], b2)
    with pytest.raises(ValueError, match="mode"):
        box_iou_rotated(b1, b2, mode="giou")


def test_chunking_gives_same_result(gen, monkeypatch):
    b1, b2 = random_boxes(90, gen), random_boxes(80, gen)
    full = box_iou_rotated(b1, b2)
    monkeypatch.setattr(rb, "_PAIR_CHUNK", 7)
    monkeypatch.setattr(rb, "_BLOCK", 5)
    np.testing.assert_array_equal(box_iou_rotated(b1, b2).numpy(), full.numpy())


def test_matches_torchvision_compiled_op(gen):
    b1 = random_boxes(300, gen, span=120.0, size=(2.0, 40.0)).float()
    b2 = random_boxes(300, gen, span=120.0, size=(2.0, 40.0)).float()
    tv = torchvision.ops.box_iou(obb_to_torchvision(b1), obb_to_torchvision(b2), fmt="cxcywhr")
    ours = box_iou_rotated(b1, b2)
    assert (tv > 0).float().mean() > 0.05
    np.testing.assert_allclose(ours.numpy(), tv.numpy(), rtol=0, atol=1e-4)


def test_gradcheck(gen):
    b1 = random_boxes(6, gen, span=6.0, size=(2.0, 6.0)).requires_grad_(True)
    b2 = random_boxes(5, gen, span=6.0, size=(2.0, 6.0)).requires_grad_(True)
    assert (box_iou_rotated(b1, b2) > 0).sum() > 10
    assert torch.autograd.gradcheck(lambda a, b: box_iou_rotated(a, b), (b1, b2))
    assert torch.autograd.gradcheck(lambda a, b: box_iou_rotated(a, b, mode="iof"), (b1, b2))
    a, b = b1[:5].detach().clone().requires_grad_(True), b2.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, y: box_iou_rotated(x, y, aligned=True), (a, b))


def test_rotated_iou_loss(gen):
    p, t = random_boxes(30, gen, span=5.0), random_boxes(30, gen, span=5.0)
    iou = shapely_iou(p, t, aligned=True)
    np.testing.assert_allclose(rotated_iou_loss(p, t, "linear").numpy(), 1 - iou, atol=1e-9)
    np.testing.assert_allclose(rotated_iou_loss(p, t, "log", eps=1e-6).numpy(),
                               -np.log(np.maximum(iou, 1e-6)), atol=1e-7)
    # a gradient step on the loss improves the overlap
    p = p.clone().requires_grad_(True)
    loss = rotated_iou_loss(p, t, "linear").sum()
    loss.backward()
    with torch.no_grad():
        assert rotated_iou_loss(p - 0.05 * p.grad, t, "linear").sum() < loss


# ------------------------------------------------------------------------------------------------- NMS
def greedy_reference(boxes, scores, thr, labels=None):
    """Plain greedy NMS on shapely IoU: by decreasing score, ties to the lower index."""
    iou = shapely_iou(boxes, boxes)
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    labels = np.zeros(len(scores), dtype=int) if labels is None else np.asarray(labels)
    keep, dead = [], np.zeros(len(scores), dtype=bool)
    for i in order:
        if dead[i]:
            continue
        keep.append(i)
        dead |= (iou[i] > thr) & (labels == labels[i])
    return keep


@pytest.mark.parametrize("thr", [0.0, 0.1, 0.3, 0.7])
def test_nms_matches_greedy_reference(gen, thr):
    b = random_boxes(250, gen, span=40.0)
    s = torch.randint(0, 12, (250,), generator=gen).double() / 12  # many ties
    keep = nms_rotated(b, s, thr)
    assert keep.dtype == torch.long
    assert keep.tolist() == greedy_reference(b.numpy(), s.numpy(), thr)
    keep32 = nms_rotated(b.float(), s.float(), thr)
    assert keep32.tolist() == keep.tolist()


def test_nms_ties_and_duplicates():
    box = [5.0, 5.0, 4.0, 2.0, 0.3]
    b = torch.tensor([box, box, box, [50, 50, 4, 2, 0]], dtype=torch.float64)
    assert nms_rotated(b, torch.tensor([0.5, 0.9, 0.9, 0.1]), 0.5).tolist() == [1, 3]
    assert nms_rotated(b, torch.ones(4), 0.5).tolist() == [0, 3]
    assert nms_rotated(b, torch.ones(4), -1.0).tolist() == [0]
    assert nms_rotated(b[:0], torch.ones(0), 0.5).shape == (0,)
    # exactly equal IoU is not suppressed: iou > threshold
    pair = torch.tensor([[0.0, 0, 4, 2, 0], [2.0, 0, 4, 2, 0]], dtype=torch.float64)  # IoU = 1/3
    assert nms_rotated(pair, torch.tensor([1.0, 0.5]), 1 / 3).tolist() == [0, 1]
    assert nms_rotated(pair, torch.tensor([1.0, 0.5]), 0.33).tolist() == [0]


def test_nms_long_suppression_chain():
    # each box overlaps only its neighbours: greedy keeps every other box
    n = 60
    b = torch.stack([torch.arange(n, dtype=torch.float64) * 1.5, torch.zeros(n), torch.full((n,), 2.0),
                     torch.full((n,), 1.0), torch.zeros(n)], 1)
    s = torch.linspace(1, 0, n, dtype=torch.float64)
    assert nms_rotated(b, s, 0.1).tolist() == list(range(0, n, 2))


def test_greedy_resolution_of_random_suppression_graphs(gen):
    # the round-based resolution of a suppression graph equals a sequential scan in index order
    for n, edges in ((1, 0), (30, 0), (30, 200), (200, 3000), (200, 19000)):
        src = torch.randint(0, n, (edges,), generator=gen)
        dst = torch.randint(0, n, (edges,), generator=gen)
        src, dst = torch.minimum(src, dst), torch.maximum(src, dst)
        src, dst = src[src < dst], dst[src < dst]
        later = [[] for _ in range(n)]
        for a, b in zip(src.tolist(), dst.tolist()):
            later[a].append(b)
        dead, keep = [False] * n, []
        for i in range(n):
            if not dead[i]:
                keep.append(i)
                for j in later[i]:
                    dead[j] = True
        assert torch.nonzero(rb._greedy(n, src, dst, src.device)).squeeze(1).tolist() == keep


def test_batched_nms_is_per_class(gen):
    b = random_boxes(200, gen, span=30.0)
    s = torch.rand(200, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 4, (200,), generator=gen)
    keep = batched_nms_rotated(b, s, labels, 0.2)
    assert keep.tolist() == greedy_reference(b.numpy(), s.numpy(), 0.2, labels.numpy())
    # never across classes: identical boxes with different labels all survive
    dup = torch.tensor([[5.0, 5, 4, 2, 0.2]] * 3, dtype=torch.float64)
    assert batched_nms_rotated(dup, torch.tensor([0.3, 0.2, 0.1]), torch.tensor([0, 1, 2]), 0.5).tolist() == [0, 1, 2]
    assert batched_nms_rotated(dup, torch.tensor([0.3, 0.2, 0.1]), torch.tensor([0, 1, 1]), 0.5).tolist() == [0, 1]
    per_class = sorted(i for c in range(4) for i in (labels == c).nonzero()[:, 0][
        nms_rotated(b[labels == c], s[labels == c], 0.2)].tolist())
    assert sorted(keep.tolist()) == per_class
    best = [int(torch.nonzero(labels == c)[s[labels == c].argmax()]) for c in labels.unique().tolist()]
    assert batched_nms_rotated(b, s, labels, -1.0).tolist() == sorted(best, key=lambda i: -float(s[i]))


def dense_cluster(n, gen, dtype=torch.float32):
    """One dense cluster: centres in a 20 px square, sides in [20, 70] px, any angle (all pairs overlap)."""
    return torch.cat([500 + torch.rand(n, 2, generator=gen) * 20, torch.rand(n, 2, generator=gen) * 50 + 20,
                      torch.rand(n, 1, generator=gen) * 4], 1).to(dtype)


def jittered_objects(objects, per, gen, dtype=torch.float64):
    """``objects`` boxes with ``per`` jittered candidates each (centre +- 5 % of the size, sides +- 10 %)."""
    base = random_boxes(objects, gen, dtype, span=200.0, size=(8.0, 40.0)).repeat_interleave(per, 0)
    d = torch.randn(objects * per, 5, generator=gen, dtype=dtype)
    size = base[:, 2:4].mean(1, keepdim=True)
    return base + torch.cat([0.05 * size * d[:, :2], 0.1 * base[:, 2:4] * d[:, 2:4], 0.05 * d[:, 4:]], 1)


NMS_ROUTES = {  # module constants that force each route of the greedy NMS
    "default": {},
    "rows only": {"_NMS_GRAPH_COST": math.inf, "_NMS_FIRST_ROWS": 1, "_NMS_MAX_ROWS": 3},
    "big blocks": {"_NMS_GRAPH_COST": math.inf, "_NMS_FIRST_ROWS": 64, "_NMS_MAX_ROWS": 64},
    "graph after one block": {"_NMS_GRAPH_COST": -math.inf, "_NMS_FIRST_ROWS": 5},
}


@pytest.fixture(scope="module")
def nms_layouts():
    """Three layouts with scores, labels and their shapely IoU matrices (computed once)."""
    gen = torch.Generator().manual_seed(99)
    boxes = {
        "dense": dense_cluster(100, gen, torch.float64),
        "jittered": jittered_objects(12, 8, gen),
        "spread": random_boxes(100, gen, span=150.0, size=(4.0, 30.0)),
    }
    out = {}
    for name, b in boxes.items():
        n = b.shape[0]
        out[name] = (b, torch.rand(n, generator=gen, dtype=torch.float64), torch.randint(0, 2, (n,), generator=gen),
                     shapely_iou(b, b))
    return out


def greedy_from_iou(iou, scores, thr, labels=None):
    """Plain greedy NMS on a given IoU matrix: by decreasing score, ties to the lower index."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    labels = np.zeros(len(scores), dtype=int) if labels is None else np.asarray(labels)
    keep, dead = [], np.zeros(len(scores), dtype=bool)
    for i in order:
        if not dead[i]:
            keep.append(i)
            dead |= (iou[i] > thr) & (labels == labels[i])
    return keep


@pytest.mark.parametrize("route", list(NMS_ROUTES))
def test_nms_layouts_every_route_matches_greedy_reference(nms_layouts, monkeypatch, route):
    for name, value in NMS_ROUTES[route].items():
        monkeypatch.setattr(rb, name, value)
    for name, (b, s, labels, iou) in nms_layouts.items():
        for thr in (0.1, 0.5):
            ref = greedy_from_iou(iou, s.numpy(), thr)
            assert nms_rotated(b, s, thr).tolist() == ref, (name, thr)
            assert nms_rotated(b.float(), s.float(), thr).tolist() == ref, (name, thr)
            assert batched_nms_rotated(b, s, labels, thr).tolist() == greedy_from_iou(
                iou, s.numpy(), thr, labels.numpy()), (name, thr)
        if name == "dense":
            assert len(ref) < b.shape[0] // 4  # suppression dominates
        if name == "spread":
            assert len(ref) > b.shape[0] // 2  # most boxes kept


# Pairs of the seeded dense layout below on which torchvision 0.29's compiled float32 rotated IoU was off by
# 0.1 to 0.34 (found by comparing all 4M pairs with shapely); kept as a regression set for ours.
TV_HARD_PAIRS = [(71, 443), (384, 729), (543, 285), (707, 1524), (742, 968), (1397, 1014), (1871, 545),
                 (1882, 1911)]


def test_pairs_where_torchvision_float32_is_wrong_match_shapely():
    b = dense_cluster(2000, torch.Generator().manual_seed(7))
    i, j = (torch.tensor(x) for x in zip(*TV_HARD_PAIRS))
    ref = shapely_iou(b[i].double(), b[j].double(), aligned=True)
    np.testing.assert_allclose(box_iou_rotated(b[i], b[j], aligned=True).numpy(), ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(box_iou_rotated(b[j], b[i], aligned=True).numpy(), ref, rtol=0, atol=1e-5)
    full = box_iou_rotated(b[i], b[j])  # the pairwise route (broadcast tile) gives the same values
    np.testing.assert_allclose(torch.diagonal(full).numpy(), ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(box_iou_rotated(b[i].double(), b[j].double(), aligned=True).numpy(), ref, atol=1e-9)
    # NMS of each pair at a threshold just below the true IoU suppresses the second box
    for k in range(len(TV_HARD_PAIRS)):
        two = torch.stack([b[i[k]], b[j[k]]])
        assert nms_rotated(two, torch.tensor([1.0, 0.5]), float(ref[k]) - 0.01).tolist() == [0]
        assert nms_rotated(two, torch.tensor([1.0, 0.5]), float(ref[k]) + 0.01).tolist() == [0, 1]


def test_dense_tiles_and_sparse_pairs_agree(gen, monkeypatch):
    """The broadcast-tile route (mostly overlapping tiles) and the gathered-pair route give the same matrix."""
    b1, b2 = dense_cluster(70, gen), random_boxes(90, gen, torch.float32, span=600.0, size=(20.0, 60.0))
    b = torch.cat([b1, b2])
    base = box_iou_rotated(b, b)
    assert (base > 0).float().mean() > 0.2
    monkeypatch.setattr(rb, "_DENSE_SHARE", 10**9)  # every tile as gathered pairs
    np.testing.assert_allclose(box_iou_rotated(b, b).numpy(), base.numpy(), rtol=0, atol=1e-6)
    monkeypatch.setattr(rb, "_DENSE_SHARE", 0)  # every tile broadcast
    monkeypatch.setattr(rb, "_BLOCK", 16)
    monkeypatch.setattr(rb, "_PAIR_CHUNK", 200)
    np.testing.assert_allclose(box_iou_rotated(b, b).numpy(), base.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(base.numpy(), shapely_iou(b.double(), b.double()), rtol=0, atol=1e-4)
    # gradients through the broadcast tiles
    x = b1[:6].double().requires_grad_(True)
    y = b1[6:11].double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, q: box_iou_rotated(p, q), (x, y))


def test_autocast_bf16_computes_in_float32(gen):
    b1 = random_boxes(80, gen, torch.float32, span=60.0, size=(4.0, 30.0))
    b2 = random_boxes(90, gen, torch.float32, span=60.0, size=(4.0, 30.0))
    s = torch.rand(80, generator=gen)
    ref_iou, ref_keep = box_iou_rotated(b1, b2), nms_rotated(b1, s, 0.3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        iou = box_iou_rotated(b1, b2)
        keep = nms_rotated(b1, s, 0.3)
        # inputs produced under autocast (bf16) are computed in float32 as well
        iou16 = box_iou_rotated(b1.bfloat16(), b2.bfloat16())
        keep16 = batched_nms_rotated(b1.bfloat16(), s, torch.zeros(80, dtype=torch.long), 0.3)
    assert iou.dtype == torch.float32 and iou16.dtype == torch.float32
    np.testing.assert_allclose(iou.numpy(), ref_iou.numpy(), rtol=0, atol=1e-6)  # float32 result
    assert keep.tolist() == ref_keep.tolist()
    # bf16 boxes: the float32 IoU of the rounded boxes; within 0.03 of the float32 boxes' IoU
    np.testing.assert_allclose(iou16.numpy(), box_iou_rotated(b1.bfloat16().float(), b2.bfloat16().float()).numpy(),
                               rtol=0, atol=1e-6)
    assert (iou16 - ref_iou).abs().max() < 0.03
    assert keep16.tolist() == nms_rotated(b1.bfloat16().float(), s, 0.3).tolist()


# ---------------------------------------------------------------------------------------------- points
def test_points_in_obb_and_sides(gen):
    b = random_boxes(30, gen, span=20.0)
    pts = torch.rand(400, 2, generator=gen, dtype=torch.float64) * 24 - 2
    inside = points_in_obb(pts, b)
    ref = shapely.contains_xy(polygons(b)[None, :], pts[:, None, 0].numpy(), pts[:, None, 1].numpy())
    np.testing.assert_array_equal(inside.numpy(), ref)
    assert inside.any()
    # aligned: point i against box i, broadcast over leading dimensions
    pa = pts[:30]
    np.testing.assert_array_equal(points_in_obb(pa, b, aligned=True).numpy(), np.diag(ref[:30]))
    grid = points_in_obb(pts[:, None], b[None], aligned=True)  # (400, 30) by broadcasting
    np.testing.assert_array_equal(grid.numpy(), ref)
    sides = point_to_obb_sides(pts, b)
    assert sides.shape == (400, 30, 4)
    np.testing.assert_array_equal((sides > 0).all(-1).numpy(), ref)
    np.testing.assert_allclose((sides[..., 0] + sides[..., 2]).numpy(), np.broadcast_to(b[:, 2].numpy(), (400, 30)))
    np.testing.assert_allclose((sides[..., 1] + sides[..., 3]).numpy(), np.broadcast_to(b[:, 3].numpy(), (400, 30)))
    # for inside points the nearest side is the distance to the polygon boundary
    bd = shapely.distance(shapely.boundary(polygons(b))[None, :], shapely.points(pts.numpy())[:, None])
    np.testing.assert_allclose(sides.amin(-1).numpy()[ref], bd[ref], atol=1e-9)
    # order (left, top, right, bottom) for an axis-aligned box: a point near its left, top edges
    s = point_to_obb_sides(torch.tensor([[1.0, 2.0]]), torch.tensor([[5.0, 5.0, 10.0, 8.0, 0.0]]))[0, 0]
    np.testing.assert_allclose(s.numpy(), [1.0, 1.0, 9.0, 7.0])


@pytest.mark.slow
def test_four_million_overlapping_pairs_vs_torchvision():
    gen = torch.Generator().manual_seed(7)
    n = 2000
    b = torch.cat([500 + torch.rand(n, 2, generator=gen) * 20, torch.rand(n, 2, generator=gen) * 50 + 20,
                   torch.rand(n, 1, generator=gen) * 4], 1)
    ours = box_iou_rotated(b, b)
    assert (ours > 0).float().mean() > 0.95  # nearly every one of the 4M pairs is clipped
    # torchvision's compiled op agrees except on a handful of pairs where it is wrong (by up to ~0.3, in float32
    # and float64 alike); there ours agrees with shapely
    for dtype in (torch.float32, torch.float64):
        tb = obb_to_torchvision(b.to(dtype))
        tv = torchvision.ops.box_iou(tb, tb, fmt="cxcywhr").float()
        bad = (ours - tv).abs() > 1e-4
        assert bad.float().mean() < 1e-4
        i, j = bad.nonzero(as_tuple=True)
        ref = shapely_iou(b[i].double(), b[j].double(), aligned=True)
        np.testing.assert_allclose(ours[i, j].numpy(), ref, atol=1e-5)
