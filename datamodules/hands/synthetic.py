"""``SyntheticHands``: two procedural hands in random poses, rendered as shaded capsules (the CPU default)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from visionkit.datamodules.base import BaseDataModule
from visionkit.datamodules.hands.capsules import render_capsules
from visionkit.ops.rotations import axis_rotation, matrix_to_axis_angle
from visionkit.tasks.hands.kinematics import BONES
from visionkit.tasks.hands.procedural import BONE_RADII, ProceduralHandLayer

#: capsules of one hand: the 20 bones (child, parent) and three across the knuckles that fill the palm
_CAPSULES = BONES + [(7, 11), (11, 15), (15, 19)]
_RADII = torch.cat([BONE_RADII[[c for c, _ in BONES]], torch.full((3,), 11.0)])
# finger of each capsule (0 thumb ... 4 pinky, 5 palm) for a slight per-finger tint
_CAPSULE_FINGER = torch.tensor([c // 4 if p != 20 or c == 3 else 5 for c, p in BONES] + [5, 5, 5])
_TINT = torch.tensor([[0.06, -0.02, -0.04], [0.03, 0.03, -0.03], [0.0, 0.0, 0.0], [-0.03, 0.0, 0.04],
                      [-0.05, -0.03, 0.06], [0.0, 0.0, 0.0]])
_SKIN = torch.tensor([[0.95, 0.74, 0.62], [0.80, 0.60, 0.52]])  # right, left


def generate_hands(n: int, seed: int, image_size: int = 128, focal: float = 200.0, max_roll: float = 1.75,
                   chunk: int = 16) -> dict[str, Tensor]:
    """Sample and render ``n`` two-hand images (deterministic in ``seed``).

    ``max_roll`` bounds the in-plane rotation of each hand (radians; pi for any roll).

    Returns:
        dict with ``image (n, 3, S, S)`` uint8, ``joints3d (n, 42, 3)`` camera-space mm, ``joints2d (n, 42, 2)``
        pixels, ``K (n, 3, 3)``, ``joint_visible (n, 42)`` bool (in the image and not occluded), ``mask
        (n, S, S)`` uint8 (0 background, 1 right, 2 left), ``hand_pose (n, 2, 45)``, ``betas (n, 2, 10)``,
        ``global_orient (n, 2, 3)`` (procedural-layer parameters; flat_hand_mean convention).
    """
    g = torch.Generator().manual_seed(seed)
    layers = [ProceduralHandLayer("right", flat_hand_mean=True), ProceduralHandLayer("left", flat_hand_mean=True)]
    joints, poses, betas, orients = [], [], [], []
    for h, layer in enumerate(layers):
        pose = layer.random_pose(n, g)
        beta = torch.randn(n, 10, generator=g)
        # wrist orientation: fingers up to +-100 deg from pointing down the image, palm towards the camera within
        # +-50 deg of yaw and +-30 deg of pitch
        roll = (torch.rand(n, generator=g) * 2 - 1) * max_roll
        yaw = (torch.rand(n, generator=g) * 2 - 1) * 0.9
        pitch = (torch.rand(n, generator=g) * 2 - 1) * 0.5
        R = axis_rotation(roll, "z") @ axis_rotation(pitch, "x") @ axis_rotation(yaw, "y")
        j = layer(R, pose, beta).joints  # (n, 21, 3), wrist at the origin
        # centre of each hand: right hand to the right of the left one, overlapping often
        side = 1.0 if h == 0 else -1.0
        centre = torch.stack([side * (torch.rand(n, generator=g) * 80 - 15),
                              (torch.rand(n, generator=g) * 2 - 1) * 40,
                              torch.rand(n, generator=g) * 160 + 560], -1)
        joints.append(j - j.mean(1, keepdim=True) + centre[:, None])
        poses.append(pose)
        betas.append(beta)
        orients.append(matrix_to_axis_angle(R))
    joints3d = torch.cat(joints, 1)  # (n, 42, 3)
    f = focal * (1 + 0.1 * (torch.rand(n, generator=g) * 2 - 1))
    K = torch.zeros(n, 3, 3)
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = f, f, image_size / 2, image_size / 2, 1
    uvw = joints3d @ K.transpose(1, 2)
    joints2d = uvw[..., :2] / uvw[..., 2:]

    cap = torch.tensor(_CAPSULES)  # (23, 2)
    caps = torch.cat([cap, cap + 21])  # (46, 2)
    start, end = joints3d[:, caps[:, 0]], joints3d[:, caps[:, 1]]
    radius = _RADII.repeat(2)[None].expand(n, -1)
    color = torch.cat([_SKIN[0] + _TINT[_CAPSULE_FINGER], _SKIN[1] + _TINT[_CAPSULE_FINGER]]).clamp(0, 1)
    color = color[None] * (0.85 + 0.3 * torch.rand(n, 1, 1, generator=g))  # per-image brightness
    images, masks, visible = [], [], []
    S = image_size
    for i in range(0, n, chunk):
        sl = slice(i, i + chunk)
        img, depth, index = render_capsules(start[sl], end[sl], radius[sl], color[sl].clamp(0, 1), K[sl], S, S)
        m = img.shape[0]
        # background: a random colour with a linear gradient and pixel noise
        base = torch.rand(m, 3, 1, 1, generator=g) * 0.5 + 0.05
        ramp = torch.linspace(-1, 1, S)
        ang = torch.rand(m, 1, 1, 1, generator=g) * 2 * math.pi
        grad = (torch.cos(ang) * ramp[None, None, None, :] + torch.sin(ang) * ramp[None, None, :, None]) * 0.15
        bg = (base + grad + 0.03 * torch.randn(m, 3, S, S, generator=g)).clamp(0, 1)
        hit = index >= 0
        img = torch.where(hit[:, None], img, bg)
        images.append((img * 255).round().to(torch.uint8))
        masks.append(torch.where(hit, 1 + (index >= len(_CAPSULES)).long(), 0).to(torch.uint8))
        # a joint is visible if it projects into the image and no surface lies more than its radius in front
        uv = joints2d[sl]
        inside = (uv >= 0).all(-1) & (uv < S).all(-1)
        px = uv.floor().long().clamp(0, S - 1)
        zbuf = depth[torch.arange(m)[:, None], px[..., 1], px[..., 0]]  # (m, 42)
        jr = BONE_RADII.repeat(2)
        visible.append(inside & (zbuf >= joints3d[sl, :, 2] - jr - 3.0))
    return {
        "image": torch.cat(images), "joints3d": joints3d, "joints2d": joints2d, "K": K,
        "joint_visible": torch.cat(visible), "mask": torch.cat(masks), "hand_pose": torch.stack(poses, 1),
        "betas": torch.stack(betas, 1), "global_orient": torch.stack(orients, 1),
    }


class SyntheticHandsDataset(Dataset):
    """In-memory synthetic two-hand samples (see :func:`generate_hands`).

    Each sample: ``image (3, S, S)`` float in [0, 1], ``joints3d (42, 3)`` mm camera space, ``joints2d (42, 2)``
    pixels, ``K (3, 3)``, ``hand_type (2,)`` (right, left present: always both), ``joint_valid (42,)`` (all 1:
    every joint is annotated), ``joint_visible (42,)``, ``mask (2, S, S)`` (right, left visible pixels) and the
    procedural parameters ``hand_pose (2, 45)``, ``betas (2, 10)``, ``global_orient (2, 3)``.
    """

    def __init__(self, n: int, seed: int, image_size: int = 128, focal: float = 200.0) -> None:
        self.data = generate_hands(n, seed, image_size, focal)

    def __len__(self) -> int:
        return len(self.data["image"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        d = self.data
        mask = d["mask"][i]
        return {
            "image": d["image"][i].float() / 255,
            "joints3d": d["joints3d"][i],
            "joints2d": d["joints2d"][i],
            "K": d["K"][i],
            "hand_type": torch.ones(2),
            "joint_valid": torch.ones(42),
            "joint_visible": d["joint_visible"][i].float(),
            "mask": torch.stack([mask == 1, mask == 2]).float(),
            "hand_pose": d["hand_pose"][i],
            "betas": d["betas"][i],
            "global_orient": d["global_orient"][i],
        }


class SyntheticHands(BaseDataModule):
    """Two procedural hands under a pinhole camera, rendered as shaded capsules with a z-buffer.

    Hands get random poses within the joint limits, random bone lengths, wrist orientations and positions
    (often overlapping, so one hand occludes the other); each hand has its own skin tone and every finger a
    slight tint. All splits are generated once in :meth:`setup`, deterministically from ``seed``.

    Args:
        num_train, num_val, num_test: samples per split.
        image_size: square image side in pixels.
        focal: mean focal length in pixels (jittered by +-10% per image).
        **kwargs: ``batch_size``, ``num_workers``, ``seed``, ``pin_memory``.
    """

    def __init__(self, num_train: int = 4000, num_val: int = 500, num_test: int = 500, image_size: int = 128,
                 focal: float = 200.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for key, v in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
            if v < 1:
                raise ValueError(f"data.init_args.{key}: must be >= 1, got {v}")
        if image_size < 16:
            raise ValueError(f"data.init_args.image_size: must be >= 16, got {image_size}")
        self.num_train, self.num_val, self.num_test = num_train, num_val, num_test
        self.image_size, self.focal = image_size, focal

    def setup(self, stage: str | None = None) -> None:
        args = (self.image_size, self.focal)
        if self.train_dataset is None and stage in (None, "fit"):
            self.train_dataset = SyntheticHandsDataset(self.num_train, self.seed * 3 + 1, *args)
        if self.val_dataset is None and stage in (None, "fit", "validate"):
            self.val_dataset = SyntheticHandsDataset(self.num_val, self.seed * 3 + 2, *args)
        if self.test_dataset is None and stage in (None, "test", "predict"):
            self.test_dataset = SyntheticHandsDataset(self.num_test, self.seed * 3 + 3, *args)
