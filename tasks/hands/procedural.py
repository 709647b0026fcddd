"""``ProceduralHandLayer``: a licence-free 21-joint kinematic hand with the call interface of ``MANOLayer``."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from visionkit.ops.precision import float32_ops
from visionkit.ops.rotations import axis_angle_to_matrix
from visionkit.tasks.hands.kinematics import MANO_PARENTS, MANO_TO_INTERHAND, forward_kinematics, mirror_axis_angle


class HandOutput(NamedTuple):
    """Output of a hand layer: ``vertices (B, V, 3)`` (None without a mesh) and ``joints (B, 21, 3)``, mm."""

    vertices: Tensor | None
    joints: Tensor


# Rest pose of the right hand in mm, MANO joint order (16) then tips (thumb, index, middle, ring, pinky).
# Wrist at the origin, fingers along +y, thumb on the +x side, palm facing -z.
_REST = [
    (0, 0, 0),
    (25, 85, 0), (27, 125, 0), (28, 150, 0),          # index MCP, PIP, DIP
    (3, 90, 0), (3, 134, 0), (3, 162, 0),             # middle
    (-34, 75, 0), (-38, 107, 0), (-40, 127, 0),       # pinky
    (-17, 85, 0), (-19, 125, 0), (-20, 151, 0),       # ring
    (20, 20, -8), (45, 45, -15), (62, 70, -20),       # thumb CMC, MCP, IP
    (72, 92, -22), (29, 170, 0), (3, 184, 0), (-21, 172, 0), (-42, 145, 0),  # tips
]
_TIP_PARENT = [15, 3, 6, 12, 9]
_PARENTS21 = MANO_PARENTS + _TIP_PARENT
# finger of each of the 21 MANO-order joints (0 thumb, 1 index, 2 middle, 3 ring, 4 pinky, -1 wrist)
_FINGER = [-1, 1, 1, 1, 2, 2, 2, 4, 4, 4, 3, 3, 3, 0, 0, 0, 0, 1, 2, 3, 4]
# position of each joint along its finger chain: 0 metacarpal end (MCP/CMC) ... 3 tip
_LEVEL = [-1, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 3, 3, 3, 3]

# Joint limits in radians as (flexion, abduction, twist) about each joint's local axes, per chain level.
_FINGER_LIMITS = [((-0.3, 1.5), (-0.3, 0.3), (-0.1, 0.1)),
                  ((0.0, 1.8), (-0.05, 0.05), (-0.05, 0.05)),
                  ((0.0, 1.2), (-0.05, 0.05), (-0.05, 0.05))]
_THUMB_LIMITS = [((-0.4, 0.7), (-0.5, 0.5), (-0.4, 0.4)),
                 ((-0.2, 0.9), (-0.2, 0.2), (-0.2, 0.2)),
                 ((-0.2, 1.2), (-0.05, 0.05), (-0.05, 0.05))]
#: capsule radius (mm) of the bone ending at each InterHand joint (index 20, the wrist, is the palm radius)
BONE_RADII = torch.tensor([8.5, 9.5, 11.0, 13.0, 7.5, 8.0, 9.0, 11.0, 7.5, 8.5, 9.0, 11.0,
                           7.0, 8.0, 8.5, 11.0, 6.5, 7.0, 7.5, 10.0, 12.0])


def _shape_basis() -> Tensor:
    """``(10, 21)`` log-scale directions of the bone ending at each MANO-order joint per shape coefficient."""
    basis = torch.zeros(10, 21)
    level = torch.tensor(_LEVEL)
    finger = torch.tensor(_FINGER)
    bones = level >= 0
    basis[0, bones] = 1.0                                    # overall size
    basis[1, bones] = torch.where(level[bones] > 0, 1.0, -1.0)  # long fingers vs. long palm
    for f in range(5):
        basis[2 + f, finger == f] = 1.0                      # per-finger length
    basis[7, level == 1] = 1.0                               # proximal phalanges
    basis[8, level >= 2] = 1.0                               # distal phalanges
    basis[9, (finger == 0) & (level == 0)] = 1.0             # thumb metacarpal
    return basis


class ProceduralHandLayer(nn.Module):
    """A kinematic hand: bone lengths (shape), 15 articulated joints with limits, left hand mirrored.

    Same call as ``MANOLayer``: ``layer(global_orient, hand_pose, betas, transl)``. The pose is MANO-style
    axis-angle per joint in rest-aligned frames (MANO joint order: index, middle, pinky, ring, thumb; 3 joints
    each). The left hand is the mirror image (``x -> -x``) of the right hand, its rotations mirrored like
    MANO's left model: ``(x, y, z) -> (x, -y, -z)`` per axis-angle.

    Args:
        side: ``"right"`` or ``"left"``.
        flat_hand_mean: if False, ``hand_pose`` is added to a relaxed mean pose (as MANO's ``hands_mean``).
        shape_scale: bone log-length change per unit shape coefficient.
    """

    num_pose = 45
    num_betas = 10

    def __init__(self, side: str = "right", flat_hand_mean: bool = False, shape_scale: float = 0.05) -> None:
        super().__init__()
        if side not in ("right", "left"):
            raise ValueError(f"side must be 'right' or 'left', got {side!r}")
        self.side, self.flat_hand_mean, self.shape_scale = side, flat_hand_mean, shape_scale
        rest = torch.tensor(_REST, dtype=torch.float32)
        self.register_buffer("rest_joints", rest, persistent=False)
        parents = torch.tensor([max(p, 0) for p in _PARENTS21])
        self.register_buffer("bone_vectors", rest - rest[parents], persistent=False)  # (21, 3), wrist: 0
        anc = torch.zeros(21, 21)  # anc[j, k] = 1 if k is j or an ancestor of j
        for j in range(21):
            k = j
            while k >= 0:
                anc[j, k] = 1
                k = _PARENTS21[k]
        self.register_buffer("ancestors", anc, persistent=False)
        self.register_buffer("shape_basis", _shape_basis(), persistent=False)
        axes, lo, hi = self._joint_axes_and_limits(rest)
        self.register_buffer("joint_axes", axes, persistent=False)  # (15, 3, 3): rows flex, abduct, twist
        self.register_buffer("limits_low", lo, persistent=False)    # (15, 3)
        self.register_buffer("limits_high", hi, persistent=False)
        mean = self.pose_from_angles(torch.where(torch.arange(3) == 0, 0.25, 0.0).expand(1, 15, 3)
                                     .clamp(lo, hi))[0]
        self.register_buffer("hands_mean", mean, persistent=False)

    @staticmethod
    def _joint_axes_and_limits(rest: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        axes, lo, hi = [], [], []
        for j in range(1, 16):
            child = j + 1 if _LEVEL[j] < 2 else 16 + _FINGER[j]
            twist = F.normalize(rest[child] - rest[j], dim=0)
            if _FINGER[j] == 0:
                # thumb: flexion turns the tip towards the palm (-z) and the fingers (-x)
                flex = F.normalize(torch.linalg.cross(twist, torch.tensor([0.0, 0.0, -1.0])), dim=0)
            else:
                flex = torch.tensor([-1.0, 0.0, 0.0])  # curling towards the palm (-z)
            flex = F.normalize(flex - (flex @ twist) * twist, dim=0)
            abduct = torch.linalg.cross(twist, flex)
            axes.append(torch.stack([flex, abduct, twist]))
            table = _THUMB_LIMITS if _FINGER[j] == 0 else _FINGER_LIMITS
            lim = torch.tensor(table[_LEVEL[j]])
            lo.append(lim[:, 0])
            hi.append(lim[:, 1])
        return torch.stack(axes), torch.stack(lo), torch.stack(hi)

    def pose_from_angles(self, angles: Tensor) -> Tensor:
        """Axis-angle pose ``(B, 45)`` from per-joint ``(flexion, abduction, twist)`` angles ``(B, 15, 3)``."""
        aa = (angles[..., None] * self.joint_axes.to(angles)).sum(-2).flatten(-2)  # (B, 45), right-hand frame
        return mirror_axis_angle(aa) if self.side == "left" else aa

    def random_pose(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Poses ``(n, 45)`` with angles uniform within the joint limits (``flat_hand_mean`` convention)."""
        u = torch.rand(n, 15, 3, generator=generator)
        pose = self.pose_from_angles(self.limits_low + u * (self.limits_high - self.limits_low))
        return pose if self.flat_hand_mean else pose - self.hands_mean

    def rest_pose_joints(self, betas: Tensor) -> Tensor:
        """Rest-pose joints ``(B, 21, 3)`` in MANO order (+ tips) after the bone-length shape change."""
        scale = torch.exp(self.shape_scale * betas @ self.shape_basis.to(betas))  # (B, 21)
        return self.ancestors.to(betas) @ (self.bone_vectors.to(betas) * scale[..., None])

    @float32_ops  # kinematics and skinning stay float32 under autocast
    def forward(self, global_orient: Tensor, hand_pose: Tensor, betas: Tensor | None = None,
                transl: Tensor | None = None) -> HandOutput:
        """Pose the hand.

        Args:
            global_orient: ``(B, 3)`` axis-angle or ``(B, 3, 3)`` rotation of the wrist.
            hand_pose: ``(B, 45)`` axis-angle of the 15 finger joints (MANO joint order).
            betas: ``(B, 10)`` shape (bone-length) coefficients, zeros if None.
            transl: ``(B, 3)`` translation in mm.

        Returns:
            :class:`HandOutput` with ``vertices=None`` and ``joints (B, 21, 3)`` in InterHand order, mm.
        """
        B = hand_pose.shape[0]
        if betas is None:
            betas = hand_pose.new_zeros(B, self.num_betas)
        pose = hand_pose if self.flat_hand_mean else hand_pose + self.hands_mean.to(hand_pose)
        if global_orient.dim() == 3:
            R0 = global_orient
            if self.side == "left":
                R0 = R0 * R0.new_tensor([[1.0, -1, -1], [-1, 1, 1], [-1, 1, 1]])  # M R M
        else:
            R0 = axis_angle_to_matrix(mirror_axis_angle(global_orient) if self.side == "left" else global_orient)
        if self.side == "left":
            pose = mirror_axis_angle(pose)
        rot = torch.cat([R0[:, None], axis_angle_to_matrix(pose.reshape(B, 15, 3))], 1)  # (B, 16, 3, 3)
        rest = self.rest_pose_joints(betas)
        posed, G = forward_kinematics(rot, rest[:, :16], MANO_PARENTS)
        tip_par = torch.tensor(_TIP_PARENT, device=rest.device)
        tips = ((G[:, tip_par, :3, :3] @ (rest[:, 16:] - rest[:, tip_par])[..., None]).squeeze(-1)
                + G[:, tip_par, :3, 3])
        joints = torch.cat([posed, tips], 1)[:, MANO_TO_INTERHAND]
        if self.side == "left":
            joints = joints * joints.new_tensor([-1.0, 1.0, 1.0])
        if transl is not None:
            joints = joints + transl[:, None]
        return HandOutput(None, joints)
