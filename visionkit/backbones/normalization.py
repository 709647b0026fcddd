"""``InputNormalization``: the per-channel normalisation a backbone expects, applied inside the model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from visionkit.io import image_to_float

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "InputNormalization", "backbone_mean_std"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def backbone_mean_std(backbone: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The input statistics of a backbone: its ``mean``/``std`` attributes (timm backbones take them from the
    model's ``pretrained_cfg``), else ImageNet's."""
    mean, std = getattr(backbone, "mean", None), getattr(backbone, "std", None)
    if mean is None or std is None:
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


class InputNormalization(nn.Module):
    """``(x - mean) / std`` per channel, for images ``(B, C, H, W)`` in [0, 1] (uint8 images are divided by
    255 first).

    Images whose channel count differs from the statistics' (e.g. one-channel SAR) pass through unchanged.

    Args:
        mean, std: per-channel statistics.
        enabled: False makes the module the identity.
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 enabled: bool = True) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean and std must have the same length, got {len(mean)} and {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.enabled = enabled
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    @classmethod
    def from_backbone(cls, backbone: nn.Module, enabled: bool = True) -> InputNormalization:
        """The normalisation ``backbone`` expects (see :func:`backbone_mean_std`)."""
        mean, std = backbone_mean_std(backbone)
        return cls(mean, std, enabled)

    def forward(self, images: Tensor) -> Tensor:
        images = image_to_float(images)
        if not self.enabled or images.shape[1] != self.mean.shape[1]:
            return images
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
