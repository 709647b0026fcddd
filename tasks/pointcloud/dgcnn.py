"""DGCNN (Wang et al., 2019): EdgeConv on kNN graphs recomputed in feature space at every layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from visionkit.ops.points import gather_points, knn
from visionkit.tasks.pointcloud.pointnet import mlp_head, one_hot_category, point_mlp


class EdgeConv(nn.Module):
    """``x_i' = max_j h([x_j - x_i, x_i])`` over the ``k`` nearest neighbours of ``x_i`` in feature space.

    Shapes: ``(B, N, C_in) -> (B, N, C_out)``.
    """

    def __init__(self, c_in: int, c_out: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.lin = nn.Linear(2 * c_in, c_out, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        _, idx = knn(x, x, min(self.k, x.shape[1]))  # (B, N, k), includes the point itself
        xj = gather_points(x, idx)  # (B, N, k, C)
        xi = x[:, :, None].expand_as(xj)
        e = self.lin(torch.cat([xj - xi, xi], -1))  # (B, N, k, C_out)
        e = F.leaky_relu(self.bn(e.permute(0, 3, 1, 2)), 0.2)
        return e.amax(-1).transpose(1, 2)


class DGCNN(nn.Module):
    """DGCNN classifier or part segmenter.

    Args:
        num_classes: classes (classification) or parts (segmentation).
        k: neighbours of the EdgeConv graphs (paper: 20).
        widths: output channels of the EdgeConv layers (paper: 64, 64, 128, 256).
        emb_dim: width of the 1x1 layer before pooling (paper: 1024).
        head: hidden sizes of the classifier (max- and average-pooled features concatenated).
        dropout: head dropout.
        segmentation: per-point logits from ``[edge features, global, one-hot category]``.
        num_categories: one-hot categories of the segmentation head.
        seg_head: hidden sizes of the segmentation head.

    Shapes:
        ``forward(points (B, N, 3), category (B,) | None) -> (B, C) | (B, N, C)``.
    """

    def __init__(self, num_classes: int, k: int = 20, widths: Sequence[int] = (64, 64, 128, 256),
                 emb_dim: int = 1024, head: Sequence[int] = (512, 256), dropout: float = 0.5,
                 segmentation: bool = False, num_categories: int = 0, seg_head: Sequence[int] = (256, 128)) -> None:
        super().__init__()
        chans = [3, *widths]
        self.convs = nn.ModuleList(EdgeConv(a, b, k) for a, b in zip(chans[:-1], chans[1:]))
        self.emb = point_mlp([sum(widths), emb_dim])
        self.segmentation, self.num_categories = segmentation, num_categories
        if segmentation:
            cin = sum(widths) + emb_dim + num_categories
            self.seg = nn.Sequential(point_mlp([cin, *seg_head]), nn.Dropout(dropout),
                                     nn.Linear(seg_head[-1], num_classes))
        else:
            self.head = mlp_head([2 * emb_dim, *head], num_classes, dropout)

    def forward(self, points: Tensor, category: Tensor | None = None) -> Tensor:
        feats, x = [], points
        for conv in self.convs:
            x = conv(x)
            feats.append(x)
        local = torch.cat(feats, -1)  # (B, N, sum(widths))
        e = self.emb(local)  # (B, N, E)
        if not self.segmentation:
            return self.head(torch.cat([e.amax(1), e.mean(1)], -1))
        N = points.shape[1]
        parts = [local, e.amax(1, keepdim=True).expand(-1, N, -1)]
        if self.num_categories:
            parts.append(one_hot_category(category, self.num_categories, points)[:, None].expand(-1, N, -1))
        return self.seg(torch.cat(parts, -1))
