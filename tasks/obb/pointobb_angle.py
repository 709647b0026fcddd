"""Dense angle heads of PointOBB: per FPN level, a map of angle encodings of the configured coder.

* :class:`ConvAngleHead` (``angle_head: conv``, the paper's branch): a conv-ReLU tower and a 3x3 conv to the
  coder's encoding.
* :class:`TensorAngleHead` (``angle_head: tensor``): a conv-ReLU tower and a 1x1 conv to ``K`` learnt maps
  ``f_k``; their orientation tensor ``J = G_sigma * sum_k grad f_k grad f_k^T`` (central differences, a gaussian
  window of ``sigma`` cells) gives the doubled-angle vector of the direction *along* the strongest edges,
  ``(c, s) = (J_yy - J_xx, -2 J_xy) / (J_xx + J_yy)``, whose length is the coherence in ``[0, 1]``, and the
  encoding is the coder's encoding of that vector (:meth:`~visionkit.tasks.obb.coders.AngleCoder.encode_doubled`).
  Turning the maps turns ``(c, s)`` by twice the turn, exactly (up to sampling), so the head is equivariant by
  construction and the symmetry loss trains which edges define the orientation instead of having to teach
  equivariance to a conv tower. It has no angle offset of its own: the direction of an elongated object's long
  edges is its ``w`` side (or its ``h`` side, which is the same box with ``w`` and ``h`` swapped).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from visionkit.tasks.obb.coders import AngleCoder

__all__ = ["ANGLE_HEADS", "ConvAngleHead", "TensorAngleHead", "build_angle_head", "orientation_tensor"]

ANGLE_HEADS = ("conv", "tensor")


def _tower(channels: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(convs):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers)


class ConvAngleHead(nn.Module):
    """Conv-ReLU tower and a 3x3 conv to the coder's encoding (shared by the levels).

    Args:
        channels: FPN width.
        coder: angle coder (its ``encode_size`` and ``bias_init``).
        convs: conv-ReLU layers of the tower.
    """

    def __init__(self, channels: int, coder: AngleCoder, convs: int = 2) -> None:
        super().__init__()
        self.tower = _tower(channels, convs)
        self.out = nn.Conv2d(channels, coder.encode_size, 3, padding=1)
        nn.init.normal_(self.out.weight, std=0.01)
        if coder.bias_init is not None:
            nn.init.constant_(self.out.bias, coder.bias_init)

    def forward(self, x: Tensor, image: Tensor | None = None) -> Tensor:
        """``(B, C, h, w)`` -> encodings ``(B, D, h, w)`` (``image`` is not used)."""
        return self.out(self.tower(x))


def orientation_tensor(maps: Tensor, sigma: float) -> Tensor:
    """Doubled-angle vector of the local edge direction of ``maps (B, K, h, w)``.

    Args:
        maps: feature maps.
        sigma: gaussian window, in cells (0: no smoothing).

    Returns:
        ``(B, 2, h, w)``: ``(c, s) = rho (cos 2a, sin 2a)`` with ``a`` the direction along the dominant edges
        (clockwise-positive in the image, y down) and ``rho`` in ``[0, 1]`` the coherence.
    """
    gx = F.pad(maps[..., :, 2:] - maps[..., :, :-2], (1, 1, 0, 0), mode="replicate") * 0.5
    gy = F.pad(maps[..., 2:, :] - maps[..., :-2, :], (0, 0, 1, 1), mode="replicate") * 0.5
    j = torch.stack([(gx * gx).mean(1), (gy * gy).mean(1), (gx * gy).mean(1)], 1)  # (B, 3, h, w)
    if sigma > 0:
        r = max(1, int(math.ceil(3 * sigma)))
        t = torch.arange(-r, r + 1, device=maps.device, dtype=maps.dtype)
        k = torch.exp(-0.5 * (t / sigma) ** 2)
        k = k / k.sum()
        j = F.conv2d(F.pad(j, (r, r, 0, 0)), k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
        j = F.conv2d(F.pad(j, (0, 0, r, r)), k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    jxx, jyy, jxy = j.unbind(1)
    tr = (jxx + jyy).clamp_min(1e-12)
    return torch.stack([(jyy - jxx) / tr, -2 * jxy / tr], 1)


class TensorAngleHead(nn.Module):
    """Conv-ReLU tower, ``K`` learnt maps and their orientation tensor (see the module docstring).

    Args:
        channels: FPN width.
        coder: angle coder (:meth:`~visionkit.tasks.obb.coders.AngleCoder.encode_doubled`).
        convs: conv-ReLU layers of the tower.
        maps: learnt maps ``K``.
        sigma: gaussian window of the tensor, in cells of each level.
        image: the input image, averaged down to each level and times a learnt gain (initially 1), joins the
            learnt maps (an orientation prior: its edges are the objects' outlines).
    """

    def __init__(self, channels: int, coder: AngleCoder, convs: int = 2, maps: int = 8, sigma: float = 1.5,
                 image: bool = False) -> None:
        super().__init__()
        if maps < 1 or sigma < 0:
            raise ValueError(f"TensorAngleHead: need maps >= 1 and sigma >= 0, got {maps}, {sigma}")
        self.coder, self.sigma = coder, float(sigma)
        self.tower = _tower(channels, convs)
        self.out = nn.Conv2d(channels, maps, 1)
        self.image_gain = nn.Parameter(torch.ones(())) if image else None

    def forward(self, x: Tensor, image: Tensor | None = None) -> Tensor:
        """``(B, C, h, w)`` -> encodings ``(B, D, h, w)``; ``image (B, 3, H, W)`` is needed when it is used."""
        f = self.out(self.tower(x))
        if self.image_gain is not None:
            if image is None:
                raise ValueError("TensorAngleHead(image=True) needs the input image")
            f = torch.cat([f, F.adaptive_avg_pool2d(image.to(f.dtype), f.shape[-2:]) * self.image_gain], 1)
        cs = orientation_tensor(f, self.sigma)
        return self.coder.encode_doubled(cs[:, 0], cs[:, 1]).permute(0, 3, 1, 2)


def build_angle_head(kind: str, channels: int, coder: AngleCoder, convs: int = 2, maps: int = 8,
                     sigma: float = 1.5, image: bool = False) -> nn.Module:
    """``'conv'`` -> :class:`ConvAngleHead`, ``'tensor'`` -> :class:`TensorAngleHead`."""
    if kind == "conv":
        return ConvAngleHead(channels, coder, convs)
    if kind == "tensor":
        return TensorAngleHead(channels, coder, convs, maps, sigma, image)
    raise ValueError(f"model.init_args.angle_head: expected one of {ANGLE_HEADS}, got {kind!r}")
