"""Point-set ops: farthest point sampling, kNN, ball query, gathering and PCA frames.

Convention (everywhere in visionkit): a batch of clouds is ``(B, N, 3)`` (row vectors, any float dtype) and a
rotation ``R`` acts as ``X @ R.T`` (:func:`visionkit.ops.rotations.rotate_points`). All functions are batched
and vectorised over clouds and points; only farthest point sampling iterates, once per sampled point.

Distances, sampling and frames compute in float32 under ``torch.autocast`` (:func:`~visionkit.ops.precision.
float32_ops`): in bfloat16 the squared distances keep 8 significant bits and the nearest neighbours change.
"""

from __future__ import annotations

import torch
from torch import Tensor

from visionkit.ops.precision import float32_ops


@float32_ops
def square_distance(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise squared Euclidean distances.

    Args:
        a: ``(B, M, D)``.
        b: ``(B, N, D)``.

    Returns:
        ``(B, M, N)``, clamped at 0 (the expansion ``|a|² + |b|² - 2 a·b`` can go slightly negative).
    """
    d = (a * a).sum(-1)[:, :, None] + (b * b).sum(-1)[:, None, :]
    d = torch.baddbmm(d, a, b.transpose(1, 2), alpha=-2.0)
    return d.clamp_min_(0.0)


def gather_points(points: Tensor, idx: Tensor) -> Tensor:
    """Gather rows of ``points`` per cloud.

    Args:
        points: ``(B, N, C)``.
        idx: ``(B, *S)`` long indices into ``N``.

    Returns:
        ``(B, *S, C)`` with ``out[b, s] = points[b, idx[b, s]]``.
    """
    B, N, C = points.shape
    flat = idx.reshape(B, -1)
    out = torch.gather(points, 1, flat[..., None].expand(-1, -1, C))
    return out.reshape(*idx.shape, C)


@float32_ops
def farthest_point_sampling(points: Tensor, n_samples: int, start: str = "first",
                            generator: torch.Generator | None = None) -> Tensor:
    """Batched farthest point sampling.

    Starts from one point per cloud, then repeatedly adds the point farthest from the already chosen set.

    Args:
        points: ``(B, N, 3)``.
        n_samples: ``M <= N`` points to pick.
        start: ``"first"`` (index 0, the usual choice), ``"random"`` (uniform, drawn from ``generator``; seed it
            for reproducible inference) or ``"centroid"`` (the point farthest from the centroid: the result then
            commutes with permutations and rotations of the cloud).
        generator: CPU generator of the random start.

    Returns:
        ``(B, M)`` long indices into ``N``.
    """
    B, N, _ = points.shape
    if n_samples > N:
        raise ValueError(f"farthest_point_sampling: cannot pick {n_samples} of {N} points")
    device = points.device
    pts = points.detach()
    idx = torch.empty(B, n_samples, dtype=torch.long, device=device)
    if start == "first":
        idx[:, 0] = 0
    elif start == "random":
        idx[:, 0] = torch.randint(N, (B,), generator=generator).to(device)
    elif start == "centroid":
        idx[:, 0] = ((pts - pts.mean(1, keepdim=True)) ** 2).sum(-1).argmax(-1)
    else:
        raise ValueError(f"start must be 'first', 'random' or 'centroid', got {start!r}")
    dist = torch.full((B, N), float("inf"), dtype=pts.dtype, device=device)
    batch = torch.arange(B, device=device)
    for m in range(1, n_samples):
        last = pts[batch, idx[:, m - 1]]  # (B, 3)
        dist = torch.minimum(dist, ((pts - last[:, None]) ** 2).sum(-1))
        idx[:, m] = dist.argmax(-1)
    return idx


def knn(query: Tensor, points: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """k nearest neighbours of every query point among ``points``, nearest first.

    Args:
        query: ``(B, M, D)``.
        points: ``(B, N, D)``.
        k: neighbours per query (``<= N``).

    Returns:
        ``(dist2, idx)``: squared distances ``(B, M, k)`` ascending and long indices ``(B, M, k)`` into ``N``.
    """
    if k > points.shape[1]:
        raise ValueError(f"knn: k={k} exceeds the {points.shape[1]} points of the cloud")
    d = square_distance(query, points)
    dist2, idx = d.topk(k, dim=-1, largest=False, sorted=True)
    return dist2, idx


def ball_query(query: Tensor, points: Tensor, radius: float, k: int) -> Tensor:
    """Up to ``k`` points within ``radius`` of each query, in index order (PointNet++ grouping).

    Balls with fewer than ``k`` points repeat their first member; an empty ball falls back to the nearest
    point, so every group is well defined.

    Args:
        query: ``(B, M, 3)``.
        points: ``(B, N, 3)``.
        radius: ball radius (same unit as the points).
        k: group size.

    Returns:
        ``(B, M, k)`` long indices into ``N``.
    """
    B, M, _ = query.shape
    N = points.shape[1]
    d = square_distance(query, points)  # (B, M, N)
    ar = torch.arange(N, device=points.device).expand(B, M, N)
    cand = torch.where(d <= radius * radius, ar, torch.full_like(ar, N))
    kk = min(k, N)
    first = cand.topk(kk, dim=-1, largest=False, sorted=True).values  # the kk smallest indices inside the ball
    nearest = d.argmin(-1, keepdim=True)  # (B, M, 1)
    head = torch.where(first[..., :1] == N, nearest, first[..., :1])
    first = torch.where(first == N, head.expand_as(first), first)
    if kk < k:
        first = torch.cat([first, head.expand(B, M, k - kk)], dim=-1)
    return first


def group_points(points: Tensor, centres: Tensor, idx: Tensor, relative: bool = True) -> Tensor:
    """Gather neighbourhoods and express them relative to their centres.

    Args:
        points: ``(B, N, 3)``.
        centres: ``(B, M, 3)``.
        idx: ``(B, M, k)`` neighbour indices (from :func:`knn` or :func:`ball_query`).
        relative: subtract the centre (local coordinates).

    Returns:
        ``(B, M, k, 3)``.
    """
    g = gather_points(points, idx)
    return g - centres[:, :, None] if relative else g


@float32_ops
def pca_frames(points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Centroid and principal axes of each cloud.

    The covariance is decomposed with ``torch.linalg.eigh`` in float64 (eigenvectors of nearly equal
    eigenvalues are ill-conditioned; double precision keeps the frame stable) and returned in the input dtype.

    Args:
        points: ``(B, N, 3)``.

    Returns:
        ``(centroid, eigenvalues, eigenvectors)``: ``(B, 3)``, ``(B, 3)`` in descending order, and ``(B, 3, 3)``
        whose columns are the unit eigenvectors ``v1, v2, v3`` (signs arbitrary).
    """
    x = points.to(torch.float64)
    t = x.mean(1)
    xc = x - t[:, None]
    cov = xc.transpose(1, 2) @ xc / x.shape[1]
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    evals, evecs = evals.flip(-1), evecs.flip(-1)
    return t.to(points.dtype), evals.to(points.dtype), evecs.to(points.dtype)


def frame_sign_patterns(group: str = "so3", dtype: torch.dtype = torch.float32,
                        device: torch.device | str | None = None) -> Tensor:
    """Sign patterns of the frame-averaging group.

    Args:
        group: ``"so3"`` (4 patterns ``(s1, s2)``, the third axis is ``(s1 v1) × (s2 v2)``) or ``"o3"``
            (8 patterns ``(s1, s2, s3)``).

    Returns:
        ``(K, 3)`` of ±1; for ``so3`` the third column is 0 (filled in by the cross product).
    """
    if group == "so3":
        s = [(a, b, 0) for a in (1, -1) for b in (1, -1)]
    elif group == "o3":
        s = [(a, b, c) for a in (1, -1) for b in (1, -1) for c in (1, -1)]
    else:
        raise ValueError(f"group must be 'so3' or 'o3', got {group!r}")
    return torch.tensor(s, dtype=dtype, device=device)


def pca_frame_candidates(evecs: Tensor, group: str = "so3") -> Tensor:
    """All frames of the frame-averaging set from principal axes.

    Args:
        evecs: ``(B, 3, 3)`` principal axes as columns (descending eigenvalues), from :func:`pca_frames`.
        group: ``"so3"`` -> 4 proper rotations ``[s1 v1, s2 v2, (s1 v1) × (s2 v2)]``; ``"o3"`` -> 8 frames
            ``[s1 v1, s2 v2, s3 v3]``.

    Returns:
        ``(B, K, 3, 3)`` frames with the axes as columns; canonical coordinates are ``(X - t) @ F``.
    """
    s = frame_sign_patterns(group, evecs.dtype, evecs.device)  # (K, 3)
    v1 = evecs[:, None, :, 0] * s[None, :, 0, None]  # (B, K, 3)
    v2 = evecs[:, None, :, 1] * s[None, :, 1, None]
    if group == "so3":
        v3 = torch.linalg.cross(v1, v2, dim=-1)
    else:
        v3 = evecs[:, None, :, 2] * s[None, :, 2, None]
    return torch.stack([v1, v2, v3], dim=-1)


__all__ = [
    "ball_query",
    "farthest_point_sampling",
    "gather_points",
    "group_points",
    "knn",
    "pca_frame_candidates",
    "pca_frames",
    "frame_sign_patterns",
    "square_distance",
]
