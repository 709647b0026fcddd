"""``FPN``: torchvision's feature pyramid with extra stride-2 levels, shared by the detectors."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock

__all__ = ["FPN"]


class _StridedLevels(ExtraFPNBlock):
    """Coarser levels appended to the pyramid: stride-2 3×3 convs on the coarsest output, ReLU between them."""

    def __init__(self, channels: int, num_extra: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, stride=2, padding=1) for _ in range(num_extra))
        for conv in self.convs:  # the same initialisation as torchvision's pyramid convs
            nn.init.kaiming_uniform_(conv.weight, a=1)
            nn.init.constant_(conv.bias, 0)

    def forward(self, results: list[Tensor], x: list[Tensor], names: list[str]) -> tuple[list[Tensor], list[str]]:
        for j, conv in enumerate(self.convs):
            results.append(conv(results[-1] if j == 0 else F.relu(results[-1])))
            names.append(f"extra{j}")
        return results, names


class FPN(nn.Module):
    """Feature pyramid over backbone levels: :class:`torchvision.ops.FeaturePyramidNetwork` (lateral 1×1 convs,
    top-down nearest upsampling + sum, 3×3 output convs) plus ``num_extra`` coarser stride-2 levels.

    Args:
        in_channels: channels of the backbone levels, finest first.
        channels: output channels of every level.
        num_extra: extra coarser levels (stride-2 3×3 convs on the coarsest output, ReLU between them).

    Input: a list of ``(B, in_channels[i], H_i, W_i)`` maps, finest first. Output: a list of
    ``len(in_channels) + num_extra`` maps of ``channels`` channels, finest first.
    """

    def __init__(self, in_channels: Sequence[int], channels: int, num_extra: int = 0) -> None:
        super().__init__()
        self.num_levels = len(in_channels) + num_extra
        self.fpn = FeaturePyramidNetwork(list(in_channels), channels,
                                         extra_blocks=_StridedLevels(channels, num_extra) if num_extra else None)

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        out = self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))
        return list(out.values())
