"""PointOBB views: label transforms against transforming the polygons, and images against the labels."""

import math

import numpy as np
import pytest
import torch
from shapely.geometry import Polygon

from visionkit.ops.rotated_boxes import obb2corners
from visionkit.tasks.obb import pointobb_views as V


def _boxes(n, size=(96, 128), seed=0):
    g = torch.Generator().manual_seed(seed)
    H, W = size
    w = 8 + 30 * torch.rand(n, generator=g, dtype=torch.float64)
    h = w / (1.5 + torch.rand(n, generator=g, dtype=torch.float64))
    cx = 20 + (W - 40) * torch.rand(n, generator=g, dtype=torch.float64)
    cy = 20 + (H - 40) * torch.rand(n, generator=g, dtype=torch.float64)
    t = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * math.pi
    return torch.stack([cx, cy, w, h, t], -1)


def _poly_map(corners, view, size, param):
    """Independent reference: move each corner with numpy formulas written from the view's definition."""
    H, W = size
    x, y = corners[..., 0], corners[..., 1]
    if view == "resize":
        return np.stack([x * param, y * param], -1)
    if view == "vflip":
        return np.stack([x, H - y], -1)
    # counter-clockwise on screen (y down) by param about the image centre
    cx, cy = W / 2, H / 2
    dx, dy = x - cx, y - cy
    c, s = math.cos(param), math.sin(param)
    return np.stack([cx + c * dx + s * dy, cy - s * dx + c * dy], -1)


@pytest.mark.parametrize("view,param", [("resize", 0.63), ("resize", 1.41), ("vflip", 0.0),
                                        ("rotate", 0.3 * math.pi), ("rotate", 0.74 * math.pi),
                                        ("rotate", math.pi / 2)])
def test_box_transform_matches_polygon_transform(view, param):
    size = (96, 128)
    boxes = _boxes(20, size)
    out = V.transform_boxes(boxes, view, size, param)
    ref = _poly_map(obb2corners(boxes).numpy(), view, size, param)  # (N, 4, 2)
    got = obb2corners(out).numpy()
    for r, q in zip(ref, got):
        pr, pq = Polygon(r), Polygon(q)
        # same rectangle: symmetric difference vanishes (vertex order may differ after a flip)
        assert pr.symmetric_difference(pq).area < 1e-9 * max(pr.area, 1.0)
        assert abs(pr.area - pq.area) < 1e-9 * pr.area


def test_angle_relations_of_the_symmetry_loss():
    size = (128, 128)
    boxes = _boxes(10, size, seed=3)
    delta = 0.4 * math.pi
    rot = V.transform_boxes(boxes, "rotate", size, delta)
    flp = V.transform_boxes(boxes, "vflip", size)
    wrap = lambda a: torch.remainder(a + math.pi / 2, math.pi) - math.pi / 2  # noqa: E731
    # d = (theta_orig - theta_rot) - delta and d = theta_orig + theta_flip vanish modulo pi
    assert torch.allclose(wrap(boxes[:, 4] - rot[:, 4] - delta), torch.zeros(10, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(wrap(boxes[:, 4] + flp[:, 4]), torch.zeros(10, dtype=torch.float64), atol=1e-12)


def _blob_image(points, size, sigma=1.5):
    H, W = size
    ys = torch.arange(H, dtype=torch.float64) + 0.5
    xs = torch.arange(W, dtype=torch.float64) + 0.5
    img = torch.zeros(len(points), 1, H, W, dtype=torch.float64)
    for k, (x, y) in enumerate(points.tolist()):
        img[k, 0] = torch.exp(-((xs[None] - x) ** 2 + (ys[:, None] - y) ** 2) / (2 * sigma**2))
    return img


def _centroid(img):
    H, W = img.shape[-2:]
    ys = torch.arange(H, dtype=img.dtype) + 0.5
    xs = torch.arange(W, dtype=img.dtype) + 0.5
    m = img[:, 0]
    tot = m.sum((-1, -2))
    return torch.stack([(m * xs[None, None]).sum((-1, -2)) / tot, (m * ys[None, :, None]).sum((-1, -2)) / tot], -1)


@pytest.mark.parametrize("view,param", [("resize", 0.5), ("resize", 1.37), ("vflip", 0.0), ("rotate", 0.35 * math.pi),
                                        ("rotate", 0.7 * math.pi)])
def test_image_transform_agrees_with_point_transform(view, param):
    size = (64, 80)
    pts = torch.tensor([[30.3, 20.7], [50.0, 40.2], [40.0, 32.0], [25.5, 35.5]], dtype=torch.float64)
    img = _blob_image(pts, size)
    if view == "resize":
        out = V.resize_view(img, param)
        assert out.shape[-2:] == (math.floor(size[0] * param), math.floor(size[1] * param))
    elif view == "vflip":
        out = V.vflip_view(img)
    else:
        out = V.rotate_view(img, param)
    expected = V.transform_points(pts, view, size, param)
    got = _centroid(out)
    assert torch.allclose(got, expected, atol=0.08), (got, expected)


def test_rotate_view_keeps_the_centre_and_inverts():
    img = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    back = V.rotate_view(V.rotate_view(img, 0.5), -0.5)
    # away from the corners (cut by the turn), a turn and its inverse give the image back up to interpolation blur
    inner = (slice(None), slice(None), slice(10, 22), slice(10, 22))
    assert (back[inner] - img[inner]).abs().mean() < 0.15
    assert torch.allclose(V.rotate_view(img, 0.0), img, atol=1e-12)


def test_sample_views_distribution():
    g = torch.Generator().manual_seed(0)
    views = [V.sample_views(g) for _ in range(4000)]
    scales = np.array([v.scale for v in views])
    flips = np.array([v.flip for v in views])
    angles = np.array([v.angle for v in views if not v.flip])
    assert scales.min() >= 0.5 and scales.max() <= 1.5 and abs(scales.mean() - 1.0) < 0.02
    assert abs(flips.mean() - 0.05) < 0.015
    assert angles.min() >= 0.25 * math.pi and angles.max() <= 0.75 * math.pi
    assert abs(angles.mean() - 0.5 * math.pi) < 0.03
    assert all(v.angle == 0.0 for v in views if v.flip)


def test_inside_image():
    pts = torch.tensor([[0.0, 0.0], [10.0, 5.0], [-0.1, 3.0], [10.0, 20.1]])
    assert V.inside_image(pts, (20, 10)).tolist() == [True, True, False, False]


def test_unknown_view_raises():
    with pytest.raises(ValueError, match="unknown view"):
        V.transform_points(torch.zeros(1, 2), "shear", (4, 4))


def test_rotation_direction_is_counter_clockwise_on_screen():
    # y points down: a quarter turn counter-clockwise on screen takes "right of the centre" to "above the centre"
    p = torch.tensor([[74.0, 64.0]], dtype=torch.float64)
    q = V.transform_points(p, "rotate", (128, 128), math.pi / 2)
    assert torch.allclose(q, torch.tensor([[64.0, 54.0]], dtype=torch.float64), atol=1e-12)
    # and a w-side pointing right (theta = 0) then points up: theta = -pi/2
    b = V.transform_boxes(torch.tensor([[74.0, 64.0, 10.0, 4.0, 0.0]], dtype=torch.float64), "rotate", (128, 128),
                          math.pi / 2)
    assert math.isclose(float(b[0, 4]), -math.pi / 2, abs_tol=1e-12)
