"""Windowed capsule renderer against a brute-force numpy evaluation of the same closed form."""

import numpy as np
import torch

from visionkit.datamodules.hands.capsules import render_capsules


def _brute_force(start, end, radius, K, H, W):
    """Every pixel against every capsule, numpy, no windows."""
    f = K[0, 0]
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    best = np.full((H, W), np.inf)
    idx = np.full((H, W), -1)
    for c in range(len(radius)):
        a = K @ start[c]
        b = K @ end[c]
        pa, pb = a[:2] / a[2], b[:2] / b[2]
        ab = pb - pa
        ap = np.stack([xs - pa[0], ys - pa[1]], -1)
        t = np.clip((ap @ ab) / max(ab @ ab, 1e-9), 0, 1)
        d2 = ((ap - t[..., None] * ab) ** 2).sum(-1)
        inv_z = (1 - t) / start[c, 2] + t / end[c, 2]
        r_px = f * radius[c] * inv_z
        q = d2 / r_px**2
        surf = np.where(q < 1, 1 / inv_z - radius[c] * np.sqrt(np.clip(1 - q, 0, None)), np.inf)
        better = surf < best
        best = np.where(better, surf, best)
        idx = np.where(better, c, idx)
    return best, idx


def test_matches_brute_force_and_occludes():
    g = torch.Generator().manual_seed(0)
    N, C, H, W = 3, 12, 48, 40
    centre = torch.tensor([0.0, 0.0, 400.0])
    start = centre + torch.randn(N, C, 3, generator=g, dtype=torch.float64) * 40
    end = start + torch.randn(N, C, 3, generator=g, dtype=torch.float64) * 30
    radius = torch.rand(N, C, generator=g, dtype=torch.float64) * 8 + 3
    color = torch.rand(N, C, 3, generator=g, dtype=torch.float64)
    K = torch.tensor([[150.0, 0, 20], [0, 150.0, 24], [0, 0, 1]], dtype=torch.float64).expand(N, 3, 3)
    image, depth, index = render_capsules(start, end, radius, color, K, H, W)
    assert image.shape == (N, 3, H, W)
    for n in range(N):
        ref_depth, ref_idx = _brute_force(start[n].numpy(), end[n].numpy(), radius[n].numpy(), K[n].numpy(), H, W)
        np.testing.assert_allclose(depth[n].numpy(), ref_depth, rtol=1e-9)
        np.testing.assert_array_equal(index[n].numpy(), ref_idx)
        assert (index[n] >= 0).any()
    # background is black, covered pixels are lit albedo (ambient <= shade <= 1)
    assert (image.permute(0, 2, 3, 1)[index < 0] == 0).all()
    alb = color[torch.arange(N)[:, None, None], index.clamp_min(0)]  # (N, H, W, 3)
    ratio = image.permute(0, 2, 3, 1)[index >= 0] / alb[index >= 0]
    assert (ratio >= 0.35 - 1e-9).all() and (ratio <= 1 + 1e-9).all()


def test_sphere_front_depth_and_nearer_capsule_wins():
    K = torch.tensor([[[100.0, 0, 16], [0, 100.0, 16], [0, 0, 1]]], dtype=torch.float64)
    # two capsules crossing at the image centre; the nearer (z = 300) must be visible there
    start = torch.tensor([[[-30.0, 0, 300], [0, -30, 350]]], dtype=torch.float64)
    end = torch.tensor([[[30.0, 0, 300], [0, 30, 350]]], dtype=torch.float64)
    radius = torch.tensor([[5.0, 5.0]], dtype=torch.float64)
    _, depth, index = render_capsules(start, end, radius, torch.ones(1, 2, 3, dtype=torch.float64), K, 32, 32)
    assert index[0, 16, 16] == 0 and index[0, 16 - 8, 16] == 1
    # at the axis the visible surface is one radius in front of it
    # the pixel centre (16.5, 16.5) is 0.5 px off the axis, whose projected radius is 100 * 5 / 300 px
    assert abs(depth[0, 16, 16].item() - (300 - 5 * (1 - (0.5 / (500 / 300)) ** 2) ** 0.5)) < 1e-6
