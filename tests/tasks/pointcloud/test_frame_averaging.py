"""Frame averaging: exact rotation invariance (classification) and equivariance (segmentation)."""

import pytest
import torch

from visionkit.ops.rotations import random_rotation, rotate_points
from visionkit.tasks.pointcloud import DGCNN, FrameAveraged, PointNet


def anisotropic_cloud(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, n, 3, generator=g) * torch.tensor([3.0, 2.0, 1.0]) + torch.tensor([0.5, -1.0, 2.0])


def sharpen(net):
    """Random BatchNorm statistics and large final weights, so logits are O(10) and differences would show."""
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    last.weight.data *= 50
    return net.eval()


@pytest.mark.parametrize("backbone", ["pointnet", "dgcnn"])
def test_fa_logits_invariant_under_100_rotations(backbone):
    net = PointNet(10, widths=(64, 128, 256)) if backbone == "pointnet" else DGCNN(10, k=8, widths=(16, 16, 32),
                                                                                     emb_dim=64)
    model = sharpen(FrameAveraged(net, "so3"))
    x = anisotropic_cloud(512 if backbone == "pointnet" else 128)
    R = random_rotation(100, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(x)
        out = model(rotate_points(x.expand(100, -1, -1), R))
        bare = net(rotate_points(x.expand(100, -1, -1), R))
    assert ref.abs().max() > 1.0  # logits are not trivially small
    assert (out - ref).abs().max() <= 1e-4
    assert (bare - bare[:1]).abs().max() > 1e-2  # the bare backbone is not invariant


def test_fa_o3_is_reflection_invariant_and_so3_is_not_required_to_be():
    net = PointNet(5, widths=(32, 64))
    x = anisotropic_cloud(256)
    flip = torch.diag(torch.tensor([1.0, 1.0, -1.0]))
    R = random_rotation(1, generator=torch.Generator().manual_seed(4))[0] @ flip  # improper
    fa8 = sharpen(FrameAveraged(net, "o3"))
    with torch.no_grad():
        assert (fa8(rotate_points(x, R)) - fa8(x)).abs().max() <= 1e-4


def test_fa_segmentation_is_rotation_and_permutation_equivariant():
    net = PointNet(6, segmentation=True, num_categories=2, widths=(32, 64, 128), seg_head=(64,))
    model = sharpen(FrameAveraged(net))
    x = anisotropic_cloud(300).expand(4, -1, -1).contiguous()
    cat = torch.tensor([0, 1, 0, 1])
    R = random_rotation(4, generator=torch.Generator().manual_seed(5))
    perm = torch.randperm(300)
    with torch.no_grad():
        ref = model(x, cat)
        rot = model(rotate_points(x, R), cat)
        per = model(x[:, perm], cat)
    assert ref.shape == (4, 300, 6)
    assert (rot - ref).abs().max() <= 1e-4
    assert (per - ref[:, perm]).abs().max() <= 1e-4


def test_fa_batches_frames_and_rejects_unknown_group():
    net = PointNet(3, widths=(16, 32))
    fa = FrameAveraged(net)
    x = anisotropic_cloud(64)
    c = fa.canonical_inputs(x)
    assert c.shape == (1, 4, 64, 3)
    # canonical copies are centred and axis-aligned: their covariance is diagonal with descending variances
    cov = c[0, 0].T @ c[0, 0] / 64
    assert torch.allclose(cov, torch.diag(torch.diagonal(cov)), atol=1e-4)
    assert cov[0, 0] > cov[1, 1] > cov[2, 2]
    with pytest.raises(ValueError, match="group"):
        FrameAveraged(net, "se3")
