"""Backbone registry: ``register_backbone(name)`` and ``build_backbone(name, **kwargs)``.

A backbone is an ``nn.Module`` that maps an image ``(B, C, H, W)`` to a list of feature maps, finest first,
and exposes ``out_channels: list[int]`` and ``strides: list[int]``. Names not in the registry fall through
to ``timm.create_model(name, features_only=True, pretrained=False)``.
"""

from visionkit.backbones.fpn import FPN
from visionkit.backbones.normalization import IMAGENET_MEAN, IMAGENET_STD, InputNormalization, backbone_mean_std
from visionkit.backbones.registry import (
    BACKBONES,
    TimmBackbone,
    build_backbone,
    list_backbones,
    register_backbone,
)
from visionkit.backbones.simple import SimpleCNN

__all__ = [
    "BACKBONES",
    "FPN",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "InputNormalization",
    "backbone_mean_std",
    "SimpleCNN",
    "TimmBackbone",
    "build_backbone",
    "list_backbones",
    "register_backbone",
]
