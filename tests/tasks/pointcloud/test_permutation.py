"""Every network is permutation invariant (classification) and equivariant (segmentation)."""

import pytest
import torch

from visionkit.tasks.pointcloud import DGCNN, FrameAveraged, PaRot, PointNet

SMALL_PAROT = dict(num_centres=16, local_k=16, global_points=8, relation_k=8, encoder_widths=(16, 32, 32),
                   feat_dim=32, agg_dim=32, emb_dim=64, head=(32,), seg_dim=32, propagate_k=4)


def build(name, seg):
    kw = dict(segmentation=seg, num_categories=2 if seg else 0)
    if name == "pointnet":
        return PointNet(5, widths=(16, 32, 64), **kw)
    if name == "fa_pointnet":
        return FrameAveraged(PointNet(5, widths=(16, 32, 64), **kw))
    if name == "dgcnn":
        return DGCNN(5, k=8, widths=(16, 16, 32), emb_dim=64, **kw)
    return PaRot(5, **SMALL_PAROT, **kw)


@pytest.mark.parametrize("name", ["pointnet", "fa_pointnet", "dgcnn", "parot"])
@pytest.mark.parametrize("seg", [False, True])
def test_permutation(name, seg):
    torch.manual_seed(0)
    net = build(name, seg).eval()
    x = torch.randn(3, 128, 3) * torch.tensor([1.5, 1.0, 0.6])
    cat = torch.tensor([0, 1, 1]) if seg else None
    perm = torch.randperm(128)
    with torch.no_grad():
        ref, out = net(x, cat), net(x[:, perm], cat)
    if seg:
        assert out.shape == (3, 128, 5)
        assert torch.allclose(out, ref[:, perm], atol=1e-4)
    else:
        assert out.shape == (3, 5)
        assert torch.allclose(out, ref, atol=1e-4)
