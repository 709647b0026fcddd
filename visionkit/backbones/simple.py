"""A small CNN for CPU configs and tests."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from visionkit.backbones.registry import register_backbone


def _conv_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


@register_backbone("simple_cnn")
class SimpleCNN(nn.Module):
    """A plain conv-BN-ReLU pyramid: each stage halves the resolution.

    Args:
        in_chans: input channels.
        widths: channels per stage; stage k has stride ``2 ** (k + 1)``.
        out_indices: which stages to return (default: the last three).
        pretrained: accepted for a uniform interface; no weights exist.
    """

    def __init__(
        self,
        in_chans: int = 3,
        widths: Sequence[int] = (16, 32, 64, 96, 128),
        out_indices: Sequence[int] | None = None,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        if pretrained:
            raise ValueError("simple_cnn has no pretrained weights; set pretrained: false")
        stages, cin = [], in_chans
        for w in widths:
            stages.append(nn.Sequential(_conv_bn_relu(cin, w, 2), _conv_bn_relu(w, w, 1)))
            cin = w
        self.stages = nn.ModuleList(stages)
        n = len(widths)
        self.out_indices = list(out_indices) if out_indices is not None else list(range(max(0, n - 3), n))
        self.out_channels = [widths[i] for i in self.out_indices]
        self.strides = [2 ** (i + 1) for i in self.out_indices]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return outs
