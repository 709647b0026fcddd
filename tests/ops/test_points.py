"""Point-set ops against brute-force numpy/scipy references."""

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from visionkit.ops.points import (
    ball_query,
    farthest_point_sampling,
    gather_points,
    group_points,
    knn,
    pca_frame_candidates,
    pca_frames,
    square_distance,
)
from visionkit.ops.rotations import random_rotation, rotate_points


def naive_fps(x: np.ndarray, m: int, start: int) -> list[int]:
    chosen = [start]
    for _ in range(m - 1):
        d = np.min(((x[:, None] - x[chosen][None]) ** 2).sum(-1), axis=1)
        chosen.append(int(d.argmax()))
    return chosen


def test_square_distance_matches_numpy():
    a, b = torch.randn(2, 7, 3, dtype=torch.float64), torch.randn(2, 9, 3, dtype=torch.float64)
    ref = ((a.numpy()[:, :, None] - b.numpy()[:, None]) ** 2).sum(-1)
    np.testing.assert_allclose(square_distance(a, b).numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("start", ["first", "centroid"])
def test_fps_matches_naive_reference(start):
    x = torch.randn(3, 200, 3, dtype=torch.float64)
    idx = farthest_point_sampling(x, 32, start=start)
    for b in range(3):
        xb = x[b].numpy()
        s = 0 if start == "first" else int(((xb - xb.mean(0)) ** 2).sum(1).argmax())
        assert idx[b].tolist() == naive_fps(xb, 32, s)
    assert all(len(set(r.tolist())) == 32 for r in idx)


def test_fps_seeded_random_start_is_reproducible():
    x = torch.randn(4, 100, 3)
    a = farthest_point_sampling(x, 10, start="random", generator=torch.Generator().manual_seed(3))
    b = farthest_point_sampling(x, 10, start="random", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="cannot pick"):
        farthest_point_sampling(x, 101)


def test_fps_centroid_start_commutes_with_permutation_and_rotation():
    x = torch.randn(2, 300, 3, dtype=torch.float64)
    perm = torch.randperm(300)
    idx = farthest_point_sampling(x, 20, start="centroid")
    idx_p = farthest_point_sampling(x[:, perm], 20, start="centroid")
    assert torch.equal(perm[idx_p], idx)
    R = random_rotation(2, dtype=torch.float64)
    assert torch.equal(farthest_point_sampling(rotate_points(x, R), 20, start="centroid"), idx)


def test_knn_matches_kdtree():
    q, p = torch.randn(2, 30, 3, dtype=torch.float64), torch.randn(2, 100, 3, dtype=torch.float64)
    d2, idx = knn(q, p, 8)
    for b in range(2):
        dd, ii = cKDTree(p[b].numpy()).query(q[b].numpy(), k=8)
        np.testing.assert_array_equal(idx[b].numpy(), ii)
        np.testing.assert_allclose(d2[b].numpy(), dd**2, atol=1e-10)


def test_ball_query_matches_reference():
    q, p = torch.rand(2, 20, 3, dtype=torch.float64), torch.rand(2, 80, 3, dtype=torch.float64)
    q[0, 0] = 10.0  # an empty ball falls back to the nearest point
    r, k = 0.3, 6
    idx = ball_query(q, p, r, k)
    for b in range(2):
        for m in range(20):
            d = ((p[b] - q[b, m]) ** 2).sum(-1).numpy()
            inside = np.flatnonzero(d <= r * r)[:k].tolist()
            if not inside:
                inside = [int(d.argmin())]
            expected = inside + [inside[0]] * (k - len(inside))
            assert idx[b, m].tolist() == expected


def test_gather_and_group():
    x = torch.randn(2, 10, 3)
    idx = torch.randint(0, 10, (2, 4, 5))
    g = gather_points(x, idx)
    assert torch.equal(g[1, 2, 3], x[1, idx[1, 2, 3]])
    c = torch.randn(2, 4, 3)
    assert torch.allclose(group_points(x, c, idx), g - c[:, :, None])


def test_pca_frames_match_numpy_and_rotate():
    x = torch.randn(3, 500, 3, dtype=torch.float64) * torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
    t, ev, V = pca_frames(x)
    for b in range(3):
        xb = x[b].numpy()
        cov = np.cov(xb.T, bias=True)
        w = np.linalg.eigvalsh(cov)[::-1]
        np.testing.assert_allclose(ev[b].numpy(), w, rtol=1e-10)
        np.testing.assert_allclose(cov @ V[b].numpy(), V[b].numpy() * w, atol=1e-10)
        np.testing.assert_allclose(t[b].numpy(), xb.mean(0), atol=1e-12)
    # rotating the cloud rotates the axes (up to sign)
    R = random_rotation(3, dtype=torch.float64)
    _, _, V2 = pca_frames(rotate_points(x, R))
    cos = ((R @ V) * V2).sum(1).abs()
    assert torch.allclose(cos, torch.ones_like(cos), atol=1e-9)


def test_frame_candidates_are_the_sign_group():
    V = random_rotation(2, dtype=torch.float64)
    F4 = pca_frame_candidates(V, "so3")
    F8 = pca_frame_candidates(V, "o3")
    assert F4.shape == (2, 4, 3, 3) and F8.shape == (2, 8, 3, 3)
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(F4.transpose(-1, -2) @ F4, eye.expand_as(F4), atol=1e-12)
    assert torch.allclose(torch.linalg.det(F4), torch.ones(2, 4, dtype=torch.float64))
    dets = torch.linalg.det(F8)
    assert (dets > 0).sum() == 8 and (dets < 0).sum() == 8
    with pytest.raises(ValueError):
        pca_frame_candidates(V, "se3")
