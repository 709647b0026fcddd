"""Rotations in 3D: random SO(3), axis rotations, 6D and axis-angle representations.

Convention (everywhere in visionkit): points are row vectors ``(..., N, 3)`` and a rotation matrix ``R``
acts as ``X @ R.T`` (:func:`rotate_points`). Under ``torch.autocast`` every function here computes in float32
(:func:`~visionkit.ops.precision.float32_ops`): a bfloat16 rotation matrix is orthogonal only to about 1e-2.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from visionkit.ops.precision import float32_ops


@float32_ops
def rotate_points(points: Tensor, R: Tensor) -> Tensor:
    """Apply rotations to row-vector points: ``points @ R^T``.

    Args:
        points: ``(..., N, 3)``.
        R: ``(..., 3, 3)`` broadcastable against the batch dims of ``points``.
    """
    return points @ R.transpose(-1, -2)


def random_rotation(n: int = 1, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> Tensor:
    """Haar-uniform random rotations ``(n, 3, 3)`` from uniformly random unit quaternions."""
    q = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    return quaternion_to_matrix(q).to(dtype=dtype, device=device)


@float32_ops
def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Unit quaternions ``(..., 4)`` as ``(w, x, y, z)`` to rotation matrices ``(..., 3, 3)``."""
    w, x, y, z = q.unbind(-1)
    m = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], dim=-1)
    return m.reshape(*q.shape[:-1], 3, 3)


@float32_ops
def axis_rotation(angle: Tensor | float, axis: str = "z") -> Tensor:
    """Rotation matrices ``(..., 3, 3)`` by ``angle`` radians (right-handed) about the ``x``, ``y`` or ``z`` axis."""
    a = torch.as_tensor(angle, dtype=torch.get_default_dtype() if not torch.is_tensor(angle) else angle.dtype)
    c, s = torch.cos(a), torch.sin(a)
    o, z = torch.ones_like(a), torch.zeros_like(a)
    if axis == "x":
        rows = [o, z, z, z, c, -s, z, s, c]
    elif axis == "y":
        rows = [c, z, s, z, o, z, -s, z, c]
    elif axis == "z":
        rows = [c, -s, z, s, c, z, z, z, o]
    else:
        raise ValueError(f"axis must be 'x', 'y' or 'z', got {axis!r}")
    return torch.stack(rows, dim=-1).reshape(*a.shape, 3, 3)


@float32_ops
def rotation_6d_to_matrix(d6: Tensor) -> Tensor:
    """6D rotation representation (Zhou et al.) ``(..., 6)`` to matrices ``(..., 3, 3)``.

    ``b1 = N(a1)``, ``b2 = N(a2 - (b1·a2) b1)``, ``b3 = b1 × b2``; ``R = [b1 b2 b3]`` as columns.
    """
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


@float32_ops
def matrix_to_rotation_6d(R: Tensor) -> Tensor:
    """Inverse of :func:`rotation_6d_to_matrix`: the first two columns, ``(..., 6)``."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


@float32_ops
def axis_angle_to_matrix(aa: Tensor) -> Tensor:
    """Axis-angle vectors ``(..., 3)`` (direction = axis, norm = angle in radians) to ``(..., 3, 3)``.

    Rodrigues' formula with Taylor expansions of ``sin(t)/t`` and ``(1-cos t)/t²`` near 0, so it is
    exact and differentiable at the identity.
    """
    t2 = (aa * aa).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    t = torch.sqrt(t2.clamp_min(1e-30))
    small = t2 < 1e-8
    a = torch.where(small, 1 - t2 / 6 + t2 * t2 / 120, torch.sin(t) / t)
    b = torch.where(small, 0.5 - t2 / 24 + t2 * t2 / 720, (1 - torch.cos(t)) / t2.clamp_min(1e-30))
    x, y, z = aa.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*aa.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(K)
    return eye + a * K + b * (K @ K)


@float32_ops
def matrix_to_axis_angle(R: Tensor) -> Tensor:
    """Rotation matrices ``(..., 3, 3)`` to axis-angle ``(..., 3)`` with angle in ``[0, π]``.

    Stable near 0 (first-order skew part) and near π (axis from the symmetric part ``(R + I)/2``).
    """
    tr = R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2]
    skew = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    # atan2 of (sin, cos) is accurate over the whole range, unlike acos near 0 and pi
    sin = skew.norm(dim=-1) / 2
    angle = torch.atan2(sin, (tr - 1) / 2)
    # generic case: axis * angle = skew * angle / (2 sin angle); near 0 the ratio tends to 1/2
    factor = torch.where(angle < 1e-4, 0.5 + angle**2 / 12, angle / (2 * sin.clamp_min(1e-30)))
    generic = skew * factor[..., None]
    # near pi: the symmetric part is cos I + (1 - cos) a a^T; the column of its largest diagonal entry of
    # (1 - cos) a a^T gives the axis, the skew part its sign
    cos = ((tr - 1) / 2)[..., None, None]
    S = (R + R.transpose(-1, -2)) / 2 - cos * torch.eye(3, dtype=R.dtype, device=R.device)
    diag = torch.diagonal(S, dim1=-2, dim2=-1).clamp_min(0)
    k = diag.argmax(-1)
    col = torch.gather(S, -1, k[..., None, None].expand(*S.shape[:-1], 1)).squeeze(-1)
    axis = col / col.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    sign = torch.sign((axis * skew).sum(-1, keepdim=True))
    axis = torch.where(sign < 0, -axis, axis)
    near_pi = (angle > math.pi - 1e-3)[..., None]
    return torch.where(near_pi, axis * angle[..., None], generic)
