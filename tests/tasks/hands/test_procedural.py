"""ProceduralHandLayer: rigid-body properties, limits, mirroring, shape."""

import torch

from visionkit.ops.rotations import axis_angle_to_matrix, random_rotation
from visionkit.tasks.hands.kinematics import BONES, ROOT
from visionkit.tasks.hands.procedural import ProceduralHandLayer


def _bone_lengths(j):
    return torch.stack([(j[:, c] - j[:, p]).norm(dim=-1) for c, p in BONES], 1)


def test_pose_keeps_bone_lengths_and_global_rotation_is_rigid():
    layer = ProceduralHandLayer("right")
    g = torch.Generator().manual_seed(0)
    pose = layer.random_pose(16, g)
    betas = torch.randn(16, 10, generator=g)
    rest = layer(torch.zeros(16, 3), torch.zeros(16, 45) - layer.hands_mean, betas).joints
    posed = layer(torch.zeros(16, 3), pose, betas).joints
    assert torch.allclose(_bone_lengths(rest), _bone_lengths(posed), atol=1e-4)
    R = random_rotation(16, g)
    rotated = layer(R, pose, betas, transl=torch.ones(16, 3)).joints
    expected = (posed - posed[:, ROOT : ROOT + 1]) @ R.transpose(1, 2) + posed[:, ROOT : ROOT + 1] + 1
    assert torch.allclose(rotated, expected, atol=1e-3)
    # axis-angle and matrix global orientations agree
    aa = torch.randn(16, 3, generator=g)
    assert torch.allclose(layer(aa, pose).joints, layer(axis_angle_to_matrix(aa), pose).joints, atol=1e-4)


def test_shape_changes_bone_lengths_only_through_betas():
    layer = ProceduralHandLayer("right", flat_hand_mean=True)
    zero = layer(torch.zeros(1, 3), torch.zeros(1, 45)).joints
    b = torch.zeros(1, 10)
    b[0, 0] = 2.0  # overall size
    big = layer(torch.zeros(1, 3), torch.zeros(1, 45), b).joints
    ratio = _bone_lengths(big) / _bone_lengths(zero)
    assert torch.allclose(ratio, torch.full_like(ratio, float(torch.exp(torch.tensor(0.1)))), atol=1e-5)


def test_left_hand_is_the_mirror_image():
    right, left = ProceduralHandLayer("right"), ProceduralHandLayer("left")
    g = torch.Generator().manual_seed(1)
    angles = torch.rand(8, 15, 3, generator=g)
    aa = torch.randn(8, 3, generator=g)
    mirror = torch.tensor([1.0, -1.0, -1.0])
    jr = right(aa, right.pose_from_angles(angles) - right.hands_mean).joints
    jl = left(aa * mirror, left.pose_from_angles(angles) - left.hands_mean).joints
    assert torch.allclose(jl, jr * torch.tensor([-1.0, 1.0, 1.0]), atol=1e-4)
    # same random stream -> mirrored hands
    pr = right.random_pose(4, torch.Generator().manual_seed(2))
    pl = left.random_pose(4, torch.Generator().manual_seed(2))
    assert torch.allclose(left(torch.zeros(4, 3), pl).joints,
                          right(torch.zeros(4, 3), pr).joints * torch.tensor([-1.0, 1.0, 1.0]), atol=1e-4)


def test_joint_limits_flexion_curls_towards_the_palm():
    layer = ProceduralHandLayer("right", flat_hand_mean=True)
    lo, hi = layer.limits_low, layer.limits_high
    assert (hi >= lo).all()
    angles = torch.zeros(1, 15, 3)
    angles[0, :, 0] = hi[:, 0]  # maximal flexion everywhere
    curled = layer(torch.zeros(1, 3), layer.pose_from_angles(angles)).joints
    flat = layer(torch.zeros(1, 3), torch.zeros(1, 45)).joints
    tips = [4, 8, 12, 16]
    # the palm faces -z: flexed fingertips move to -z and come closer to the wrist
    assert (curled[0, tips, 2] < flat[0, tips, 2] - 5).all()
    angles[0, :, 0] = hi[:, 0] / 3
    half = layer(torch.zeros(1, 3), layer.pose_from_angles(angles)).joints
    assert (half[0, tips, 2] < flat[0, tips, 2] - 20).all()
    assert (curled[0, tips].norm(dim=-1) < flat[0, tips].norm(dim=-1)).all()
    samples = layer.random_pose(256, torch.Generator().manual_seed(3))
    assert samples.abs().max() < 2.5
