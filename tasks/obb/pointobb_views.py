"""The three views of PointOBB: original, resized, and rotated or flipped, with their exact label transforms.

Coordinates are continuous pixels: an ``H x W`` image covers ``[0, W] x [0, H]``, pixel ``(i, j)`` has its centre
at ``(j + 0.5, i + 0.5)``, y points down. Boxes are ``(cx, cy, w, h, theta)``, radians, clockwise-positive in the
image (the w-side direction is ``(cos theta, sin theta)``).

* **Resized view** (:func:`resize_view`): the image is resampled by a factor ``s`` (bilinear, output
  ``floor(H s) x floor(W s)``) so that a point ``p`` moves to ``s p`` exactly; boxes scale their centre and sides.
* **Rotated view** (:func:`rotate_view`): the image is turned about its centre ``c = (W/2, H/2)`` by ``delta``
  *counter-clockwise as seen on screen* (same output size, zero padding). A point moves to
  ``c + R(-delta) (p - c)`` and a box angle becomes ``theta - delta``, so the symmetry loss of PointOBB reads
  ``d = (theta_orig - theta_rot) - delta``.
* **Flipped view** (:func:`vflip_view`): top-bottom mirror, ``y -> H - y``, ``theta -> -theta``, so
  ``d = theta_orig + theta_flip``.

:func:`sample_views` draws the random parameters of one training step: ``s ~ U(0.5, 1.5)`` and, with probability
0.95, a rotation by ``delta = pi * U(0.25, 0.75)``, else a vertical flip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ViewParams",
    "sample_views",
    "resize_view",
    "rotate_view",
    "vflip_view",
    "transform_points",
    "transform_boxes",
    "inside_image",
    "disc_mask",
    "inside_disc",
]


@dataclass
class ViewParams:
    """Random parameters of the extra views of one training step.

    Attributes:
        scale: resize factor of the resized view.
        flip: True for a vertical flip instead of a rotation.
        angle: rotation ``delta`` (radians, counter-clockwise on screen) of the rotated view; 0 when flipped.
    """

    scale: float
    flip: bool
    angle: float


def sample_views(
    generator: torch.Generator | None = None,
    scale_range: tuple[float, float] = (0.5, 1.5),
    angle_range: tuple[float, float] = (0.25, 0.75),
    rotate_prob: float = 0.95,
) -> ViewParams:
    """Draw ``s ~ U(scale_range)``; with probability ``rotate_prob`` a rotation ``pi * U(angle_range)``, else a
    vertical flip."""
    u = torch.rand(3, generator=generator, dtype=torch.float64).tolist()
    scale = scale_range[0] + (scale_range[1] - scale_range[0]) * u[0]
    flip = u[1] >= rotate_prob
    angle = 0.0 if flip else math.pi * (angle_range[0] + (angle_range[1] - angle_range[0]) * u[2])
    return ViewParams(scale=scale, flip=flip, angle=angle)


# ------------------------------------------------------------------------------------------------ label maps
def _rot(angle: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Matrix that turns vectors by ``angle`` counter-clockwise on screen (y down): ``R(-angle)`` in the
    clockwise-positive convention of the boxes."""
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, s], [-s, c]], dtype=dtype, device=device)


def transform_points(points: Tensor, view: str, size: tuple[int, int], param: float = 0.0) -> Tensor:
    """Map points ``(N, 2)`` ``(x, y)`` of an ``(H, W)`` image into a view.

    Args:
        points: ``(N, 2)`` pixels.
        view: ``'resize'`` (``param`` = scale), ``'rotate'`` (``param`` = angle, counter-clockwise on screen) or
            ``'vflip'``.
        size: ``(H, W)`` of the original image.
        param: the view's parameter.

    Returns:
        ``(N, 2)`` points in the view's pixel coordinates.
    """
    H, W = size
    if view == "resize":
        return points * param
    if view == "vflip":
        return torch.stack([points[:, 0], H - points[:, 1]], -1)
    if view == "rotate":
        c = points.new_tensor([W / 2, H / 2])
        return (points - c) @ _rot(param, points.dtype, points.device).T + c
    raise ValueError(f"unknown view {view!r}; expected 'resize', 'rotate' or 'vflip'")


def transform_boxes(boxes: Tensor, view: str, size: tuple[int, int], param: float = 0.0) -> Tensor:
    """Map oriented boxes ``(N, 5)`` into a view (see :func:`transform_points`); the angle is not re-wrapped
    (``theta - delta`` after a rotation, ``-theta`` after a flip)."""
    out = boxes.clone()
    out[:, :2] = transform_points(boxes[:, :2], view, size, param)
    if view == "resize":
        out[:, 2:4] = boxes[:, 2:4] * param
    elif view == "vflip":
        out[:, 4] = -boxes[:, 4]
    else:
        out[:, 4] = boxes[:, 4] - param
    return out


def inside_image(points: Tensor, size: tuple[int, int], margin: float = 0.0) -> Tensor:
    """``(N,)`` bool: the points lie in ``[margin, W - margin] x [margin, H - margin]``."""
    H, W = size
    return ((points[:, 0] >= margin) & (points[:, 0] <= W - margin)
            & (points[:, 1] >= margin) & (points[:, 1] <= H - margin))


# ------------------------------------------------------------------------------------------------ images
def resize_view(images: Tensor, scale: float) -> Tensor:
    """Resample ``(B, C, H, W)`` images by ``scale`` (bilinear; antialiased when shrinking).

    The sampling grid is tied to ``scale`` itself (not to the rounded output size), so image content at ``p``
    lands exactly at ``scale * p``. Output ``(B, C, floor(H s), floor(W s))``.
    """
    return F.interpolate(images, scale_factor=scale, mode="bilinear", align_corners=False,
                         recompute_scale_factor=False, antialias=scale < 1)


def rotate_view(images: Tensor, angle: float, padding: str = "zeros") -> Tensor:
    """Turn ``(B, C, H, W)`` images about their centre by ``angle`` radians counter-clockwise on screen
    (bilinear, same size).

    ``padding`` fills the corners that come from outside the image: ``'zeros'``, or ``'reflection'`` (mirrored
    content; on small images, where a receptive field spans the whole image, the straight edges of zero-filled
    corners give away the turn itself).
    """
    B, _, H, W = images.shape
    # output pixel p' samples the input at c + R(angle)^-1 (p' - c); in grid_sample's normalised coordinates
    # (x_n = 2x/W - 1, y_n = 2y/H - 1) that is D^-1 R^T D with D = diag(W/2, H/2)
    r_inv = _rot(angle, torch.float64, images.device).T
    d = torch.tensor([W / 2, H / 2], dtype=torch.float64, device=images.device)
    a = r_inv * d[None, :] / d[:, None]
    theta = torch.cat([a, torch.zeros(2, 1, dtype=torch.float64, device=images.device)], 1)
    grid = F.affine_grid(theta[None].expand(B, 2, 3).to(images.dtype), [B, images.shape[1], H, W],
                         align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def disc_mask(size: tuple[int, int], device: torch.device | None = None,
              dtype: torch.dtype = torch.float32) -> Tensor:
    """``(1, 1, H, W)`` anti-aliased mask of the disc inscribed in an ``(H, W)`` image (1 inside)."""
    H, W = size
    ys = torch.arange(H, device=device, dtype=dtype) + 0.5 - H / 2
    xs = torch.arange(W, device=device, dtype=dtype) + 0.5 - W / 2
    r = torch.hypot(ys[:, None], xs[None, :])
    return (min(H, W) / 2 - r + 0.5).clamp(0, 1)[None, None]


def inside_disc(points: Tensor, size: tuple[int, int], margin: float = 0.0) -> Tensor:
    """``(N,)`` bool: the points lie within ``min(H, W) / 2 - margin`` of the image centre."""
    H, W = size
    c = points.new_tensor([W / 2, H / 2])
    return (points - c).norm(dim=-1) <= min(H, W) / 2 - margin


def vflip_view(images: Tensor) -> Tensor:
    """Mirror ``(B, C, H, W)`` images top-bottom."""
    return images.flip(-2)
