"""Geometry under bfloat16 autocast: computed in float32, equal to the float32 results.

Stated tolerance: results under ``torch.autocast("cpu", torch.bfloat16)`` equal the float32 results to 1e-6
(relative, or absolute on unit-size quantities) and index results (neighbours, samples, kept boxes) are
identical. The first test shows that without the guard bfloat16 changes them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from visionkit.ops.points import ball_query, farthest_point_sampling, knn, pca_frames, square_distance
from visionkit.ops.rotated_boxes import box_iou_rotated, nms_rotated
from visionkit.ops.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    quaternion_to_matrix,
    random_rotation,
    rotate_points,
    rotation_6d_to_matrix,
)

REPO = Path(__file__).resolve().parents[2]
TOL = 1e-6


def bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def _clouds(seed: int = 0, B: int = 2, N: int = 256) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, N, 3, generator=g) * 4 + 20  # off-centre: bfloat16 keeps ~2-3 decimal digits of 20


def test_unguarded_bf16_distances_pick_other_neighbours():
    pts = _clouds()
    ref = knn(pts, pts, 8)[1]
    with bf16():
        d = torch.baddbmm((pts * pts).sum(-1)[:, :, None] + (pts * pts).sum(-1)[:, None, :], pts,
                          pts.transpose(1, 2), alpha=-2.0)  # the expansion of square_distance, unguarded
    assert d.dtype == torch.bfloat16
    wrong = d.float().topk(8, dim=-1, largest=False).indices
    assert (wrong != ref).float().mean() > 0.1


def test_distances_neighbours_and_sampling_under_autocast_equal_float32():
    pts = _clouds()
    q = pts[:, :64]
    d_ref, (dist_ref, idx_ref) = square_distance(q, pts), knn(q, pts, 8)
    ball_ref, fps_ref = ball_query(q, pts, 0.5, 16), farthest_point_sampling(pts, 32, start="centroid")
    with bf16():
        d, (dist, idx) = square_distance(q, pts), knn(q, pts, 8)
        ball, fps = ball_query(q, pts, 0.5, 16), farthest_point_sampling(pts, 32, start="centroid")
    assert d.dtype == dist.dtype == torch.float32
    torch.testing.assert_close(d, d_ref, rtol=TOL, atol=TOL)
    torch.testing.assert_close(dist, dist_ref, rtol=TOL, atol=TOL)
    assert torch.equal(idx, idx_ref) and torch.equal(ball, ball_ref) and torch.equal(fps, fps_ref)


def test_pca_frames_under_autocast_equal_float32():
    pts = _clouds(1) * torch.tensor([3.0, 1.0, 0.3])
    ref = pca_frames(pts)
    with bf16():
        got = pca_frames(pts)
    for a, b in zip(got, ref):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=TOL, atol=TOL)


def test_rotations_under_autocast_equal_float32_and_stay_orthogonal():
    g = torch.Generator().manual_seed(2)
    aa = torch.randn(64, 3, generator=g)
    pts = _clouds(2, B=64, N=16)
    R_ref = axis_angle_to_matrix(aa)
    q = torch.nn.functional.normalize(torch.randn(64, 4, generator=g), dim=-1)
    lin = torch.nn.Linear(8, 6)
    x = torch.randn(64, 8, generator=g)
    R6_ref = rotation_6d_to_matrix(lin(x))
    refs = (R_ref, matrix_to_axis_angle(R_ref), rotate_points(pts, R_ref[:, None]), quaternion_to_matrix(q))
    with bf16():
        R = axis_angle_to_matrix(aa)
        got = (R, matrix_to_axis_angle(R), rotate_points(pts, R[:, None]), quaternion_to_matrix(q))
        d6 = lin(x)  # a network's output under autocast is bfloat16
        R6 = rotation_6d_to_matrix(d6)
    for a, b in zip(got, refs):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=TOL, atol=10 * TOL)  # points ~24: float32 ulp 2e-6
    assert d6.dtype == torch.bfloat16 and R6.dtype == torch.float32
    eye = torch.eye(3).expand(64, 3, 3)
    torch.testing.assert_close(R6.transpose(-1, -2) @ R6, eye, rtol=0, atol=TOL)
    torch.testing.assert_close(R6, R6_ref, rtol=0, atol=0.05)  # same rotation up to the bf16 rounding of d6


def test_low_precision_inputs_outside_autocast_keep_their_dtype():
    pts, R = _clouds(3).bfloat16(), random_rotation(2).bfloat16()
    out = rotate_points(pts, R[:, None])
    assert out.dtype == torch.bfloat16
    ref = (pts.float() @ R[:, None].float().transpose(-1, -2)).bfloat16()  # products in float32, rounded once
    assert torch.equal(out, ref)


def test_rotated_iou_and_nms_under_autocast_equal_float32():
    g = torch.Generator().manual_seed(4)
    n = 200
    boxes = torch.cat([torch.rand(n, 2, generator=g) * 200 + 500, torch.rand(n, 2, generator=g) * 40 + 8,
                       (torch.rand(n, 1, generator=g) - 0.5) * torch.pi], 1)
    scores = torch.rand(n, generator=g)
    iou_ref, keep_ref = box_iou_rotated(boxes, boxes), nms_rotated(boxes, scores, 0.3)
    with bf16():
        iou, keep = box_iou_rotated(boxes, boxes), nms_rotated(boxes, scores, 0.3)
    torch.testing.assert_close(iou.float(), iou_ref, rtol=TOL, atol=TOL)
    assert torch.equal(keep, keep_ref)


def test_frame_averaging_and_parot_codes_under_autocast_equal_float32():
    from visionkit.tasks.pointcloud.frame_averaging import FrameAveraged
    from visionkit.tasks.pointcloud.parot import frame_from_directions, relative_pose_code

    pts = _clouds(5) * torch.tensor([3.0, 1.0, 0.3])
    fa = FrameAveraged(torch.nn.Identity())
    ref = fa.canonical_inputs(pts)
    g = torch.Generator().manual_seed(5)
    d1, d2, r = (torch.randn(2, 32, 3, generator=g) for _ in range(3))
    O_ref = frame_from_directions(d1, d2)
    code_ref = relative_pose_code(O_ref[0], O_ref[1], r[0])
    with bf16():
        got = fa.canonical_inputs(pts)
        O = frame_from_directions(d1, d2)
        code = relative_pose_code(O[0], O[1], r[0])
    assert got.dtype == O.dtype == code.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=TOL, atol=1e-5)  # coordinates ~20
    torch.testing.assert_close(O, O_ref, rtol=TOL, atol=TOL)
    torch.testing.assert_close(code, code_ref, rtol=TOL, atol=TOL)


def _fake_data():
    spec = importlib.util.spec_from_file_location("fake_data", REPO / "tools" / "fake_data.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fake_data", mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("layer", ["procedural", "mano"])
def test_hand_layers_under_autocast_equal_float32(layer, tmp_path):
    if layer == "mano":
        from visionkit.tasks.hands.mano import MANOLayer

        hand = MANOLayer(_fake_data().write_mano(tmp_path / "mano"), "right")
    else:
        from visionkit.tasks.hands.procedural import ProceduralHandLayer

        hand = ProceduralHandLayer("right")
    g = torch.Generator().manual_seed(6)
    go, pose, betas = torch.randn(4, 3, generator=g), torch.randn(4, 45, generator=g) * 0.3, torch.randn(4, 10,
                                                                                                       generator=g)
    ref = hand(go, pose, betas)
    with bf16():
        got = hand(go, pose, betas)
    pairs = [(a, b) for a, b in zip(got, ref) if a is not None]
    assert len(pairs) == (2 if layer == "mano" else 1)  # joints, and vertices with a mesh
    for a, b in pairs:
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=TOL, atol=1e-4)  # millimetres: 1e-4 mm
