"""A small CNN for CPU configs and tests."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from visionkit.backbones.registry import register_backbone

NORMS = ("batch", "group", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    return nn.Identity()


def _conv_bn_relu(cin: int, cout: int, stride: int, norm: str = "batch") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=norm == "none"),
        _norm(norm, cout),
        nn.ReLU(inplace=True),
    )


@register_backbone("simple_cnn")
class SimpleCNN(nn.Module):
    """A plain conv-norm-ReLU pyramid: each stage halves the resolution.

    Args:
        in_chans: input channels.
        widths: channels per stage; stage k has stride ``2 ** (k + 1)``.
        out_indices: which stages to return (default: the last three).
        pretrained: accepted for a uniform interface; no weights exist.
        norm: ``"batch"`` (default), ``"group"`` (per-sample statistics: results independent of how a batch
            is split across processes, e.g. DDP on CPU where SyncBatchNorm is unavailable) or ``"none"``.
    """

    def __init__(
        self,
        in_chans: int = 3,
        widths: Sequence[int] = (16, 32, 64, 96, 128),
        out_indices: Sequence[int] | None = None,
        pretrained: bool = False,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"simple_cnn: norm must be one of {NORMS}, got {norm!r}")
        if pretrained:
            raise ValueError("simple_cnn has no pretrained weights; set pretrained: false")
        stages, cin = [], in_chans
        for w in widths:
            stages.append(nn.Sequential(_conv_bn_relu(cin, w, 2, norm), _conv_bn_relu(w, w, 1, norm)))
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
