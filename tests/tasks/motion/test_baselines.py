"""Constant-velocity baseline: exact on uniform motion."""

import torch

from visionkit.tasks.motion.baselines import ConstantVelocity


def test_constant_velocity_exact_on_uniform_motion():
    x0, v = torch.randn(2, 4, 1, 3, dtype=torch.float64), torch.randn(2, 4, 1, 3, dtype=torch.float64)
    t = torch.arange(15, dtype=torch.float64)[:, None]
    traj = x0 + t * v  # (2, 4, 15, 3)
    out = ConstantVelocity(future_len=7)(traj[:, :, :8])["future"]
    torch.testing.assert_close(out, traj[:, :, 8:], rtol=0, atol=1e-12)


def test_constant_velocity_mask_zeroes_absent_agents():
    x = torch.randn(1, 3, 4, 2)
    mask = torch.tensor([[True, False, True]])
    out = ConstantVelocity(future_len=2)(x, mask)["future"]
    assert (out[0, 1] == 0).all() and (out[0, 0] != 0).any()
