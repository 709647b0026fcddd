"""PointNet (Qi et al., 2017) without the input/feature transforms: shared point MLP, max-pool, MLP head.

Bare, it depends on the orientation of the input (the non-invariant contrast); wrapped in
:class:`~visionkit.tasks.pointcloud.frame_averaging.FrameAveraged` it becomes exactly rotation invariant.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class SharedMLP(nn.Module):
    """Per-point MLP on channels-last tensors ``(..., C_in) -> (..., C_out)``: Linear + BatchNorm + ReLU.

    BatchNorm statistics are taken over all leading dimensions (every point of every cloud), so the layer
    treats points independently at inference: it commutes with permutations of the points.
    """

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self.lins = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(channels[:-1], channels[1:]))
        self.bns = nn.ModuleList(nn.BatchNorm1d(b) for b in channels[1:])

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        for lin, bn in zip(self.lins, self.bns):
            x = torch.relu(bn(lin(x)))
        return x.reshape(*lead, -1)


def point_mlp(channels: Sequence[int]) -> SharedMLP:
    """Shorthand for :class:`SharedMLP`."""
    return SharedMLP(channels)


def mlp_head(channels: Sequence[int], num_classes: int, dropout: float) -> nn.Sequential:
    """Classifier on ``(B, C)``: Linear + BatchNorm + ReLU + Dropout blocks, then a Linear to the logits."""
    layers: list[nn.Module] = []
    for a, b in zip(channels[:-1], channels[1:]):
        layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True), nn.Dropout(dropout)]
    layers.append(nn.Linear(channels[-1], num_classes))
    return nn.Sequential(*layers)


class PointNet(nn.Module):
    """PointNet classifier or part segmenter.

    Args:
        num_classes: classes (classification) or parts (segmentation).
        widths: channels of the shared point MLP; the last is the global feature size.
        head: hidden sizes of the classification head.
        dropout: dropout of the heads.
        segmentation: predict per-point logits from ``[local feature, global feature, one-hot category]``.
        num_categories: object categories fed as one-hot to the segmentation head (0: none).
        seg_head: hidden sizes of the per-point segmentation head.
        local_layer: index into ``widths`` of the per-point feature used by the segmentation head.

    Shapes:
        ``forward(points (B, N, 3), category (B,) | None) -> (B, C)`` or ``(B, N, C)``.
    """

    def __init__(self, num_classes: int, widths: Sequence[int] = (64, 128, 1024), head: Sequence[int] = (512, 256),
                 dropout: float = 0.4, segmentation: bool = False, num_categories: int = 0,
                 seg_head: Sequence[int] = (256, 128), local_layer: int = 1) -> None:
        super().__init__()
        self.segmentation = segmentation
        self.num_categories = num_categories
        widths = list(widths)
        self.local = point_mlp([3, *widths[: local_layer + 1]])
        self.glob = point_mlp(widths[local_layer:])
        if segmentation:
            cin = widths[local_layer] + widths[-1] + num_categories
            self.seg = nn.Sequential(point_mlp([cin, *seg_head]), nn.Dropout(dropout),
                                     nn.Linear(seg_head[-1], num_classes))
        else:
            self.head = mlp_head([widths[-1], *head], num_classes, dropout)

    def forward(self, points: Tensor, category: Tensor | None = None) -> Tensor:
        local = self.local(points)  # (B, N, C_l)
        g = self.glob(local).amax(1)  # (B, C_g)
        if not self.segmentation:
            return self.head(g)
        N = points.shape[1]
        parts = [local, g[:, None].expand(-1, N, -1)]
        if self.num_categories:
            parts.append(one_hot_category(category, self.num_categories, points)[:, None].expand(-1, N, -1))
        return self.seg(torch.cat(parts, -1))  # (B, N, C)


def one_hot_category(category: Tensor | None, num_categories: int, like: Tensor) -> Tensor:
    """One-hot ``(B, num_categories)`` in the dtype/device of ``like``; a missing category is an error."""
    if category is None:
        raise ValueError("this segmentation model needs the object category (batch key 'category')")
    return nn.functional.one_hot(category.long(), num_categories).to(like.dtype)
