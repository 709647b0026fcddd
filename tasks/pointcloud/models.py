"""Builds a point-cloud network by name, optionally wrapped in frame averaging."""

from __future__ import annotations

from typing import Any

from torch import nn

from visionkit.tasks.pointcloud.dgcnn import DGCNN
from visionkit.tasks.pointcloud.frame_averaging import FrameAveraged
from visionkit.tasks.pointcloud.parot import PaRot
from visionkit.tasks.pointcloud.pointnet import PointNet

MODELS: dict[str, type[nn.Module]] = {"pointnet": PointNet, "dgcnn": DGCNN, "parot": PaRot}


def build_pointcloud_model(name: str, num_classes: int, frame_averaging: str = "none", segmentation: bool = False,
                           num_categories: int = 0, model_args: dict[str, Any] | None = None) -> nn.Module:
    """``name`` in ``pointnet | dgcnn | parot``; ``frame_averaging`` in ``none | so3 | o3``.

    ``model_args`` are passed to the network's constructor (widths, patch sizes...).
    """
    if name not in MODELS:
        raise ValueError(f"model.init_args.model: expected one of {', '.join(MODELS)}, got {name!r}")
    if frame_averaging not in ("none", "so3", "o3"):
        raise ValueError(f"model.init_args.frame_averaging: expected none, so3 or o3, got {frame_averaging!r}")
    try:
        net = MODELS[name](num_classes, segmentation=segmentation, num_categories=num_categories,
                           **(model_args or {}))
    except TypeError as err:
        raise ValueError(f"model.init_args.model_args: {err}") from None
    return net if frame_averaging == "none" else FrameAveraged(net, frame_averaging)
