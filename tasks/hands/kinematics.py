"""Hand skeleton conventions and forward kinematics shared by the MANO and procedural hand layers.

Joint order (InterHand2.6M, per hand, 21 joints; right hand 0-20 and left hand 21-41 in a two-hand array)::

    0 thumb tip   1 thumb IP    2 thumb MCP   3 thumb CMC
    4 index tip   5 index DIP   6 index PIP   7 index MCP
    8 middle tip  9 middle DIP 10 middle PIP 11 middle MCP
   12 ring tip   13 ring DIP   14 ring PIP   15 ring MCP
   16 pinky tip  17 pinky DIP  18 pinky PIP  19 pinky MCP
   20 wrist (root, last)

The layers articulate a 16-joint MANO-order tree (0 wrist; index 1-3, middle 4-6, pinky 7-9, ring 10-12,
thumb 13-15) and append five fingertips (thumb, index, middle, ring, pinky) as joints 16-20, then reorder
to the InterHand order with :data:`MANO_TO_INTERHAND`.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: parent of each of the 16 MANO joints (-1: root)
MANO_PARENTS: list[int] = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]
#: MANO joints (16) + tips (thumb, index, middle, ring, pinky as 16..20) -> InterHand order
MANO_TO_INTERHAND: list[int] = [16, 15, 14, 13, 17, 3, 2, 1, 18, 6, 5, 4, 19, 12, 11, 10, 20, 9, 8, 7, 0]
#: parent of each InterHand joint within one hand (-1: wrist)
INTERHAND_PARENTS: list[int] = [1, 2, 3, 20, 5, 6, 7, 20, 9, 10, 11, 20, 13, 14, 15, 20, 17, 18, 19, 20, -1]
#: index of the wrist (root) within one hand
ROOT = 20
#: the 20 bones of one hand as (child, parent) pairs, InterHand indices
BONES: list[tuple[int, int]] = [(j, p) for j, p in enumerate(INTERHAND_PARENTS) if p >= 0]


def tree_levels(parents: list[int]) -> list[list[int]]:
    """Group joints by depth in the tree (root level first) so FK runs one batched step per level."""
    depth = []
    for p in parents:
        depth.append(0 if p < 0 else depth[p] + 1)
    return [[j for j in range(len(parents)) if depth[j] == d] for d in range(max(depth) + 1)]


def forward_kinematics(rot: Tensor, joints: Tensor, parents: list[int]) -> tuple[Tensor, Tensor]:
    """Compose joint rotations along a kinematic tree.

    ``G_k = G_parent(k) · [R_k | J_k − J_parent(k)]`` and ``G_root = [R_root | J_root]``.

    Args:
        rot: ``(B, J, 3, 3)`` local rotation of each joint (rest-pose aligned frames, as in MANO).
        joints: ``(B, J, 3)`` rest-pose joint positions.
        parents: length-``J`` parent indices, -1 for the root; parents precede children.

    Returns:
        ``posed (B, J, 3)`` joint positions and ``G (B, J, 4, 4)`` global rigid transforms.
    """
    B, J = joints.shape[:2]
    par = torch.tensor([max(p, 0) for p in parents], device=joints.device)
    rel = joints - joints[:, par] * torch.tensor([p >= 0 for p in parents], dtype=joints.dtype,
                                                  device=joints.device)[:, None]
    local = torch.zeros(B, J, 4, 4, dtype=joints.dtype, device=joints.device)
    local[..., :3, :3] = rot
    local[..., :3, 3] = rel
    local[..., 3, 3] = 1
    G = torch.zeros_like(local)
    for level in tree_levels(parents):
        idx = torch.tensor(level, device=joints.device)
        ps = [parents[j] for j in level]
        if ps[0] < 0:
            G[:, idx] = local[:, idx]
        else:
            G[:, idx] = G[:, torch.tensor(ps, device=joints.device)] @ local[:, idx]
    return G[..., :3, 3], G


def mirror_axis_angle(aa: Tensor) -> Tensor:
    """Axis-angle of ``M R M`` with ``M = diag(-1, 1, 1)`` (a left hand's rotation seen as a right hand's)."""
    return aa * aa.new_tensor([1.0, -1.0, -1.0]).repeat(aa.shape[-1] // 3)


def root_relative(joints: Tensor) -> Tensor:
    """Subtract each hand's wrist: ``(..., 42, 3)`` or ``(..., 21, 3)`` in, same shape out."""
    n = joints.shape[-2] // 21
    j = joints.unflatten(-2, (n, 21))
    return (j - j[..., ROOT : ROOT + 1, :]).flatten(-3, -2)
