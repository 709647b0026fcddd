"""Round trips and distribution checks of visionkit.ops.rotations."""

import math

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from visionkit.ops.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    random_rotation,
    rotation_6d_to_matrix,
)


def test_6d_round_trip_float64():
    R = random_rotation(1000, torch.Generator().manual_seed(0), dtype=torch.float64)
    d6 = matrix_to_rotation_6d(R)
    assert d6.shape == (1000, 6)
    assert (rotation_6d_to_matrix(d6) - R).abs().max() < 1e-10
    # any 6D vector maps to a rotation and back to the same rotation
    x = torch.randn(500, 6, dtype=torch.float64)
    Rx = rotation_6d_to_matrix(x)
    assert (Rx @ Rx.transpose(1, 2) - torch.eye(3, dtype=torch.float64)).abs().max() < 1e-12
    assert (torch.linalg.det(Rx) - 1).abs().max() < 1e-12
    assert (rotation_6d_to_matrix(matrix_to_rotation_6d(Rx)) - Rx).abs().max() < 1e-10


def test_6d_matches_gram_schmidt_closed_form():
    a = torch.randn(100, 6, dtype=torch.float64)
    a1, a2 = a[:, :3].numpy(), a[:, 3:].numpy()
    b1 = a1 / np.linalg.norm(a1, axis=1, keepdims=True)
    b2 = a2 - (b1 * a2).sum(1, keepdims=True) * b1
    b2 /= np.linalg.norm(b2, axis=1, keepdims=True)
    ref = np.stack([b1, b2, np.cross(b1, b2)], -1)
    np.testing.assert_allclose(rotation_6d_to_matrix(a).numpy(), ref, atol=1e-12)


def test_axis_angle_round_trip_including_near_zero_and_pi():
    g = torch.Generator().manual_seed(1)
    axis = torch.nn.functional.normalize(torch.randn(600, 3, generator=g, dtype=torch.float64), dim=1)
    angle = torch.cat([torch.rand(200, generator=g, dtype=torch.float64) * math.pi,
                       torch.rand(200, generator=g, dtype=torch.float64) * 1e-6,
                       math.pi - torch.rand(200, generator=g, dtype=torch.float64) * 1e-6])
    aa = axis * angle[:, None]
    R = axis_angle_to_matrix(aa)
    np.testing.assert_allclose(R.numpy(), Rotation.from_rotvec(aa.numpy()).as_matrix(), atol=1e-12)
    back = matrix_to_axis_angle(R)
    # angle pi: aa and -aa are the same rotation; compare the rotations and the angles
    assert (axis_angle_to_matrix(back) - R).abs().max() < 1e-10
    assert (back.norm(dim=1) - angle).abs().max() < 1e-10
    generic = angle < math.pi - 1e-3
    assert (back[generic] - aa[generic]).abs().max() < 1e-10
    R2 = random_rotation(1000, g, dtype=torch.float64)
    assert (axis_angle_to_matrix(matrix_to_axis_angle(R2)) - R2).abs().max() < 1e-10


def test_random_rotation_is_haar():
    R = random_rotation(20000, torch.Generator().manual_seed(2), dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    assert (R @ R.transpose(1, 2) - eye).abs().max() < 1e-12
    assert (torch.linalg.det(R) - 1).abs().max() < 1e-12
    # Haar: E[R] = 0, and E[R_ij^2] = 1/3 for every entry; the rotation angle has density (1 - cos t) / pi
    se = 1 / math.sqrt(3 * 20000)
    assert R.mean(0).abs().max() < 5 * se
    assert ((R**2).mean(0) - 1 / 3).abs().max() < 0.02
    angle = matrix_to_axis_angle(R).norm(dim=1)
    # mean angle under (1 - cos t)/pi on [0, pi] is pi/2 + 2/pi
    assert abs(angle.mean().item() - (math.pi / 2 + 2 / math.pi)) < 0.03
