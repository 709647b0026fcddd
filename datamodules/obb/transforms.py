"""Exact geometric transforms of an image with its oriented boxes and points: flips and 90° rotations.

Coordinates are continuous pixel coordinates: the image covers ``[0, W] x [0, H]``, the centre of pixel
``(row i, column j)`` is ``(j + 0.5, i + 0.5)``, y points down. Boxes are ``(cx, cy, w, h, theta)`` with theta
in radians, clockwise-positive in the image (the w-side direction is ``(cos theta, sin theta)``), le90.

Every transform maps the box polygon exactly onto the polygon of the returned box (tested against
transforming the four corners), and keeps ``w >= h`` so only the angle is re-wrapped into ``[-pi/2, pi/2)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["wrap_le90", "hflip", "vflip", "rot90", "resize_pad", "points_in_boxes"]


def wrap_le90(theta: Tensor) -> Tensor:
    """Wrap angles (radians) into ``[-pi/2, pi/2)`` (period pi: a box is symmetric under a half turn)."""
    return torch.remainder(theta + math.pi / 2, math.pi) - math.pi / 2


def _boxes_points(boxes: Tensor | None, points: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    return (None if boxes is None else boxes.clone(), None if points is None else points.clone())


def hflip(image: Tensor, boxes: Tensor | None = None, points: Tensor | None = None):
    """Mirror left-right.

    Args:
        image: ``(C, H, W)``.
        boxes: ``(N, 5)`` le90 boxes or None.
        points: ``(N, 2)`` as ``(x, y)`` or None.

    Returns:
        ``(image, boxes, points)`` transformed: ``x -> W - x``, ``theta -> -theta``.
    """
    W = image.shape[-1]
    boxes, points = _boxes_points(boxes, points)
    if boxes is not None and boxes.numel():
        boxes[:, 0] = W - boxes[:, 0]
        boxes[:, 4] = wrap_le90(-boxes[:, 4])
    if points is not None and points.numel():
        points[:, 0] = W - points[:, 0]
    return image.flip(-1), boxes, points


def vflip(image: Tensor, boxes: Tensor | None = None, points: Tensor | None = None):
    """Mirror top-bottom: ``y -> H - y``, ``theta -> -theta``. Shapes as in :func:`hflip`."""
    H = image.shape[-2]
    boxes, points = _boxes_points(boxes, points)
    if boxes is not None and boxes.numel():
        boxes[:, 1] = H - boxes[:, 1]
        boxes[:, 4] = wrap_le90(-boxes[:, 4])
    if points is not None and points.numel():
        points[:, 1] = H - points[:, 1]
    return image.flip(-2), boxes, points


def rot90(image: Tensor, boxes: Tensor | None = None, points: Tensor | None = None, k: int = 1):
    """Rotate by ``k`` quarter turns clockwise as seen on screen (y down).

    One clockwise quarter turn maps ``(x, y) -> (H - y, x)`` and ``theta -> theta + pi/2``; the output image is
    ``(C, W, H)``. Shapes as in :func:`hflip`.
    """
    k = k % 4
    boxes, points = _boxes_points(boxes, points)
    for _ in range(k):
        H = image.shape[-2]
        image = torch.rot90(image, -1, dims=(-2, -1))
        if boxes is not None and boxes.numel():
            x, y = boxes[:, 0].clone(), boxes[:, 1].clone()
            boxes[:, 0], boxes[:, 1] = H - y, x
            boxes[:, 4] = wrap_le90(boxes[:, 4] + math.pi / 2)
        if points is not None and points.numel():
            x, y = points[:, 0].clone(), points[:, 1].clone()
            points[:, 0], points[:, 1] = H - y, x
    return image, boxes, points


def resize_pad(image: Tensor, size: int, boxes: Tensor | None = None, points: Tensor | None = None):
    """Scale isotropically so the longer side is ``size``, then pad bottom/right with zeros to ``size x size``.

    Isotropic scaling keeps rotated boxes rotated boxes (an anisotropic one would shear them).

    Returns:
        ``(image (C, size, size), boxes, points, scale)`` with coordinates multiplied by ``scale``.
    """
    C, H, W = image.shape
    scale = size / max(H, W)
    nh, nw = max(1, round(H * scale)), max(1, round(W * scale))
    if (nh, nw) != (H, W):
        image = torch.nn.functional.interpolate(image[None], size=(nh, nw), mode="bilinear", align_corners=False,
                                                antialias=scale < 1)[0]
    out = image.new_zeros(C, size, size)
    out[:, :nh, :nw] = image
    boxes, points = _boxes_points(boxes, points)
    if boxes is not None and boxes.numel():
        boxes[:, :4] *= scale
    if points is not None and points.numel():
        points *= scale
    return out, boxes, points, scale


def points_in_boxes(boxes: Tensor, offsets: Tensor) -> Tensor:
    """Points at relative ``offsets`` ``(N, 2)`` in ``[-0.5, 0.5]`` of each box's own frame -> ``(N, 2)`` (x, y)."""
    cx, cy, w, h, th = boxes.unbind(-1)
    c, s = torch.cos(th), torch.sin(th)
    u, v = offsets[:, 0] * w, offsets[:, 1] * h
    return torch.stack([cx + u * c - v * s, cy + u * s + v * c], -1)
