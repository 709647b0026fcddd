"""Backbone parts: the pyramid against a hand computation, input statistics from timm's pretrained_cfg."""

import pytest
import torch
from torch.nn import functional as F

from visionkit.backbones import FPN, IMAGENET_MEAN, InputNormalization, build_backbone


def test_fpn_matches_the_pyramid_formula():
    torch.manual_seed(0)
    fpn = FPN([4, 8, 16], 6, num_extra=2)
    feats = [torch.randn(2, 4, 16, 16), torch.randn(2, 8, 8, 8), torch.randn(2, 16, 4, 4)]
    out = fpn(feats)
    assert [o.shape[-1] for o in out] == [16, 8, 4, 2, 1] and all(o.shape[1] == 6 for o in out)
    inner, layer = fpn.fpn.inner_blocks, fpn.fpn.layer_blocks
    lat = [inner[i](f) for i, f in enumerate(feats)]
    for i in (2, 1):  # top-down: nearest upsampling + sum
        lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[-2:], mode="nearest")
    ref = [layer[i](x) for i, x in enumerate(lat)]
    convs = fpn.fpn.extra_blocks.convs
    ref.append(convs[0](ref[-1]))
    ref.append(convs[1](F.relu(ref[-1])))
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b)


def test_timm_backbone_statistics_come_from_pretrained_cfg():
    timm = pytest.importorskip("timm")
    bb = build_backbone("resnet18", out_indices=[2, 3])
    cfg = timm.create_model("resnet18", pretrained=False).pretrained_cfg
    norm = InputNormalization.from_backbone(bb)
    torch.testing.assert_close(norm.mean.flatten(), torch.tensor(cfg["mean"]))
    torch.testing.assert_close(norm.std.flatten(), torch.tensor(cfg["std"]))
    x = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(norm(x), (x - torch.tensor(cfg["mean"]).view(1, 3, 1, 1))
                               / torch.tensor(cfg["std"]).view(1, 3, 1, 1))
    gray = build_backbone("resnet18", out_indices=[2], in_chans=1)
    assert len(InputNormalization.from_backbone(gray).mean.flatten()) == 1


def test_registered_backbones_default_to_imagenet_and_other_channel_counts_pass_through():
    norm = InputNormalization.from_backbone(build_backbone("simple_cnn"))
    torch.testing.assert_close(norm.mean.flatten(), torch.tensor(IMAGENET_MEAN))
    x = torch.rand(2, 1, 5, 5)
    assert norm(x) is x
    assert InputNormalization(enabled=False)(torch.rand(1, 3, 2, 2)).shape == (1, 3, 2, 2)
    with pytest.raises(ValueError, match="std"):
        InputNormalization((0.5,), (0.0,))
