"""PointOBB's dense angle heads: the orientation tensor against closed forms, its exact symmetries, the heads."""

import math

import pytest
import torch

from visionkit.tasks.obb.coders import PSCCoder, UCRCoder, wrap_le90
from visionkit.tasks.obb.pointobb_angle import ConvAngleHead, TensorAngleHead, build_angle_head, orientation_tensor


def _stripes(theta: float, size: int = 48, period: float = 6.0) -> torch.Tensor:
    """``(1, 1, size, size)`` stripes whose edges run along ``(cos theta, sin theta)`` (y down)."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                          indexing="ij")
    normal = -math.sin(theta) * x + math.cos(theta) * y
    return torch.cos(2 * math.pi * normal / period)[None, None]


@pytest.mark.parametrize("theta", [-1.3, -0.6, 0.0, 0.4, 0.9, 1.5])
def test_orientation_tensor_of_stripes_is_their_direction(theta):
    cs = orientation_tensor(_stripes(theta), sigma=2.0)[0, :, 12:36, 12:36]  # away from the border
    got = torch.atan2(cs[1], cs[0]) / 2
    err = wrap_le90(got - theta).abs()
    assert err.max() < math.radians(3.0)
    assert cs.norm(dim=0).min() > 0.9  # one direction only: coherent


def test_orientation_tensor_is_exactly_equivariant_to_quarter_turns_and_flips():
    torch.manual_seed(0)
    maps = torch.randn(2, 4, 20, 20, dtype=torch.float64)
    cs = orientation_tensor(maps, 1.5)
    # quarter turn of the array: angles move by pi/2, the doubled-angle vector changes sign
    turned = orientation_tensor(torch.rot90(maps, 1, (-2, -1)), 1.5)
    assert torch.allclose(turned, -torch.rot90(cs, 1, (-2, -1)), atol=1e-12)
    # top-bottom flip: theta -> -theta, (c, s) -> (c, -s)
    flipped = orientation_tensor(torch.flip(maps, (-2,)), 1.5)
    ref = torch.flip(cs, (-2,)) * torch.tensor([1.0, -1.0], dtype=torch.float64).view(1, 2, 1, 1)
    assert torch.allclose(flipped, ref, atol=1e-12)
    assert cs.norm(dim=1).max() <= 1 + 1e-9


def test_tensor_head_reads_the_image_and_encodes_with_the_coder():
    torch.manual_seed(0)
    coder = UCRCoder(dims=3)
    head = TensorAngleHead(8, coder, convs=1, maps=2, sigma=1.0, image=True)
    with torch.no_grad():  # only the image prior: the learnt maps are zero
        head.out.weight.zero_()
        head.out.bias.zero_()
    theta = 0.6
    img = _stripes(theta, 64, 16.0).float().expand(1, 3, 64, 64) * 0.5 + 0.5
    enc = head(torch.randn(1, 8, 32, 32), img)  # level of stride 2
    assert enc.shape == (1, 3, 32, 32)
    dec = coder.decode(enc[0, :, 8:24, 8:24].permute(1, 2, 0))
    assert wrap_le90(dec - theta).abs().max() < math.radians(4.0)
    with pytest.raises(ValueError, match="image"):
        head(torch.randn(1, 8, 32, 32))


def test_encode_doubled_matches_encode_on_the_unit_circle():
    theta = torch.linspace(-math.pi / 2, math.pi / 2, 50, dtype=torch.float64)
    c, s = torch.cos(2 * theta), torch.sin(2 * theta)
    for coder in (UCRCoder(dims=2), UCRCoder(dims=3), UCRCoder(dims=5), PSCCoder(num_step=3)):
        assert torch.allclose(coder.encode_doubled(c, s), coder.encode(theta), atol=1e-9)
    # UCR keeps the length: half a vector gives half an encoding
    u = UCRCoder(dims=3)
    assert torch.allclose(u.encode_doubled(0.5 * c, 0.5 * s), 0.5 * u.encode(theta), atol=1e-9)


def test_build_angle_head():
    coder = UCRCoder(dims=3)
    assert isinstance(build_angle_head("conv", 8, coder), ConvAngleHead)
    assert isinstance(build_angle_head("tensor", 8, coder, maps=3), TensorAngleHead)
    with pytest.raises(ValueError, match="angle_head"):
        build_angle_head("steerable", 8, coder)
