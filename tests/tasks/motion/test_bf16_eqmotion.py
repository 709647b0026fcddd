"""EqMotion under bfloat16 autocast computes in float32: float32 predictions and E(3) equivariance kept.

Stated tolerance: predictions under ``torch.autocast("cpu", torch.bfloat16)`` equal the float32 ones to 1e-5
(coordinates of order 1-10), and ``f(x Rᵀ + t) = f(x) Rᵀ + t`` holds to 1e-4 as in float32; in bfloat16 the
equivariance error would be ~1e-1.
"""

import torch

from visionkit.ops.rotations import random_rotation
from visionkit.tasks.motion.eqmotion import EqMotion


def test_eqmotion_under_autocast_equals_float32_and_stays_equivariant():
    torch.manual_seed(0)
    m = EqMotion(past_len=8, future_len=6, dim=3, channels=16, hidden=16, num_layers=2).eval()
    x = torch.randn(4, 5, 8, 3).cumsum(2)
    mask = torch.ones(4, 5, dtype=torch.bool)
    mask[1, 3:] = False
    R, t = random_rotation(1)[0], torch.randn(3) * 3
    xg = x @ R.T + t  # transformed in float32, outside autocast
    with torch.no_grad():
        ref = m(x, mask)["future"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m(x, mask)["future"]
            yg = m(xg, mask)["future"]
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    err = ((yg - (y @ R.T + t)) * mask[..., None, None]).abs().max().item()
    assert err <= 1e-4
