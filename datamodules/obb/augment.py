"""Device-side batch augmentation for oriented detection: arbitrary-angle rotation and photometric jitter.

Runs in :meth:`~visionkit.datamodules.base.BaseDataModule.augment` (after the batch reached the device), on
the stacked ``image`` ``(B, C, H, W)`` and the per-image box lists, with kornia for the pixels.

Geometry (the conventions of :mod:`visionkit.datamodules.obb.transforms`): the image covers ``[0, W] x [0, H]``,
y down, and is turned about its centre ``(W / 2, H / 2)`` by ``alpha`` clockwise as seen on screen, keeping its
size. A point moves as ``p' = c + R(alpha) (p - c)`` with ``R = [[cos, -sin], [sin, cos]]`` and a box
``(cx, cy, w, h, theta)`` becomes ``(R-rotated centre, w, h, wrap_le90(theta + alpha))``: exact, since the w-side
direction ``(cos theta, sin theta)`` turns by the same matrix. Boxes that leave the image are dropped when the
visible share of their area (exact rotated intersection with the image rectangle) falls below
``min_visible``; the others are kept whole, as the DOTA protocol keeps partially visible objects. Point labels
follow their object, or, when they come with their own ``point_labels``, are dropped once outside the image.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from visionkit.datamodules.obb import transforms as T
from visionkit.datamodules.obb.transforms import wrap_le90
from visionkit.ops.rotated_boxes import box_iou_rotated, hbb2obb, obb2hbb

__all__ = ["OBBBatchAugment", "flip_rotate_batch", "rotate_batch"]

#: per-object keys that are aligned with ``boxes`` (filtered together when an object is dropped)
BOX_KEYS = ("boxes", "gt_boxes", "labels", "difficult", "hboxes")


def _rotate_xy(xy: Tensor, alpha: Tensor, centre: Tensor) -> Tensor:
    """Turn points ``(K, 2)`` clockwise on screen by ``alpha`` ``(K,)`` about ``centre`` ``(K, 2)``."""
    c, s = torch.cos(alpha), torch.sin(alpha)
    d = xy - centre
    return centre + torch.stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1]], 1)


def rotate_batch(batch: dict[str, Any], angles: Tensor, min_visible: float = 0.6) -> dict[str, Any]:
    """Turn every image of a batch and its labels by its own angle (radians, clockwise on screen).

    Args:
        batch: ``image`` ``(B, C, H, W)``; lists of ``(N_b, 5)`` ``boxes`` (and ``gt_boxes``), ``(N_b,)``
            ``labels``/``difficult``, ``(N_b, 4)`` ``hboxes``, ``(P_b, 2)`` ``points`` (with ``point_labels``
            when they are not one per box).
        angles: ``(B,)`` radians; 0 leaves an image and its labels unchanged.
        min_visible: an object is dropped when less than this share of its box area stays inside the image
            (zero-size point boxes: when the point leaves the image).

    Returns:
        A new batch dict. ``hboxes`` become the horizontal boxes enclosing the turned oriented boxes.
    """
    from kornia.geometry.transform import rotate

    images = batch["image"]
    B, _, H, W = images.shape
    dev = images.device
    angles = angles.to(device=dev, dtype=torch.float32)
    out = dict(batch)
    # kornia: degrees, counter-clockwise on screen, about the centre of the pixel grid ((W-1)/2 in index
    # coordinates, which is W/2 in the continuous coordinates used here)
    turned = rotate(images.float(), torch.rad2deg(-angles))
    out["image"] = torch.where((angles != 0).view(B, 1, 1, 1), turned.to(images.dtype), images)
    centre = torch.tensor([W / 2.0, H / 2.0], device=dev)
    frame = torch.tensor([[W / 2.0, H / 2.0, float(W), float(H), 0.0]], device=dev)

    counts = [int(b.shape[0]) for b in batch["boxes"]]
    n = sum(counts)
    img_of = torch.repeat_interleave(torch.arange(B, device=dev), torch.tensor(counts, device=dev))
    a = angles[img_of]  # (N,)

    def turn_boxes(boxes: list[Tensor]) -> Tensor:
        flat = torch.cat(list(boxes)).to(dev).float() if n else torch.zeros(0, 5, device=dev)  # list or stacked
        xy = _rotate_xy(flat[:, :2], a, centre.expand(n, 2))
        return torch.cat([xy, flat[:, 2:4], wrap_le90(flat[:, 4:5] + a[:, None])], 1)

    new_boxes = turn_boxes(batch["boxes"])
    ref = turn_boxes(batch["gt_boxes"]) if "gt_boxes" in batch else new_boxes
    area = ref[:, 2] * ref[:, 3]
    visible = box_iou_rotated(ref, frame.expand(n, 5), mode="iof", aligned=True)  # (N,) share inside
    inside = (ref[:, 0] >= 0) & (ref[:, 0] <= W) & (ref[:, 1] >= 0) & (ref[:, 1] <= H)
    keep = torch.where(area > 0, visible >= min_visible, inside)
    keep_per = keep.split(counts)

    flat = {"boxes": new_boxes}
    if "gt_boxes" in batch:
        flat["gt_boxes"] = ref
    if "hboxes" in batch:
        flat["hboxes"] = obb2hbb(ref)
    for k in flat:
        out[k] = [t[m].to(batch[k][0].dtype) for t, m in zip(flat[k].split(counts), keep_per)]
    for k in ("labels", "difficult"):
        if k in batch:
            out[k] = [t[m.to(t.device)] for t, m in zip(batch[k], keep_per)]

    if "points" in batch:
        pcounts = [int(p.shape[0]) for p in batch["points"]]
        pimg = torch.repeat_interleave(torch.arange(B, device=dev), torch.tensor(pcounts, device=dev))
        pts = torch.cat(list(batch["points"])).to(dev).float() if sum(pcounts) else torch.zeros(0, 2, device=dev)
        pts = _rotate_xy(pts, angles[pimg], centre.expand(pts.shape[0], 2)).split(pcounts)
        if "point_labels" in batch:  # points of their own: drop those that left the image
            pin = [(p[:, 0] >= 0) & (p[:, 0] <= W) & (p[:, 1] >= 0) & (p[:, 1] <= H) for p in pts]
            out["points"] = [p[m] for p, m in zip(pts, pin)]
            out["point_labels"] = [t[m.to(t.device)] for t, m in zip(batch["point_labels"], pin)]
        else:  # one point per object
            out["points"] = [p[m] for p, m in zip(pts, keep_per)]
    return out


def flip_rotate_batch(
    batch: dict[str, Any],
    generator: torch.Generator | None = None,
    hflip_prob: float = 0.5,
    vflip_prob: float = 0.5,
    rot90_prob: float = 0.75,
) -> dict[str, Any]:
    """Random horizontal flip, vertical flip and clockwise quarter turns per image (square images).

    Transforms ``image`` (stacked ``(B, C, H, W)``) with ``boxes``, ``gt_boxes``, ``hboxes`` and ``points``
    (lists); zero-size point boxes (``label_mode='point'``) move with their points. Horizontal boxes stay
    horizontal under these transforms, so they remain exact. With probability ``rot90_prob`` an image is
    turned by 1, 2 or 3 quarters (uniformly).
    """
    images = batch["image"]
    B = images.shape[0]
    u = torch.rand(B, 3, generator=generator)
    q = torch.randint(1, 4, (B,), generator=generator)
    draws = torch.stack([u[:, 0] < hflip_prob, u[:, 1] < vflip_prob], 1).tolist()
    turns = torch.where(u[:, 2] < rot90_prob, q, torch.zeros_like(q)).tolist()
    out_imgs, keys = [], [k for k in ("boxes", "gt_boxes", "points", "hboxes") if k in batch]
    new = {k: list(batch[k]) for k in keys}
    if "hboxes" in new:  # transformed as le90 boxes with theta in {0, -pi/2}, converted back below
        new["hboxes"] = [hbb2obb(hb) for hb in new["hboxes"]]
    for b in range(B):  # per image: a handful of tensor ops each
        img = images[b]
        boxes = {k: new[k][b] for k in ("boxes", "gt_boxes", "hboxes") if k in new}
        pts = new["points"][b] if "points" in new else None
        ops = ([T.hflip] if draws[b][0] else []) + ([T.vflip] if draws[b][1] else [])
        for op in ops:
            for k in boxes:
                _, boxes[k], _ = op(img, boxes[k], None)
            img, _, pts = op(img, None, pts)
        if turns[b]:
            for k in boxes:
                _, boxes[k], _ = T.rot90(img, boxes[k], None, k=turns[b])
            img, _, pts = T.rot90(img, None, pts, k=turns[b])
        out_imgs.append(img)
        for k in boxes:
            new[k][b] = boxes[k]
        if pts is not None:
            new["points"][b] = pts
    if "hboxes" in new:
        new["hboxes"] = [obb2hbb(hb) for hb in new["hboxes"]]
    batch = dict(batch)
    batch["image"] = torch.stack(out_imgs)
    batch.update(new)
    return batch


class OBBBatchAugment:
    """Random rotation (any angle) and photometric jitter of a training batch, on its device.

    Args:
        rotate_prob: probability that an image is turned.
        max_angle: turns are uniform in ``[-max_angle, max_angle]`` degrees.
        min_visible: share of a box's area that must stay inside the image for it to be kept.
        brightness, contrast, saturation, hue: kornia ``ColorJitter`` ranges (0 disables each).
        jitter_prob: probability of the photometric jitter per image.
    """

    def __init__(
        self,
        rotate_prob: float = 0.5,
        max_angle: float = 180.0,
        min_visible: float = 0.6,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        hue: float = 0.0,
        jitter_prob: float = 0.5,
    ) -> None:
        for name, v in (("rotate_prob", rotate_prob), ("jitter_prob", jitter_prob), ("min_visible", min_visible)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name}: expected a value in [0, 1], got {v}")
        if max_angle < 0:
            raise ValueError(f"max_angle: expected >= 0 degrees, got {max_angle}")
        self.rotate_prob, self.max_angle, self.min_visible = rotate_prob, max_angle, min_visible
        self.jitter = None
        if max(brightness, contrast, saturation, hue) > 0:
            from kornia.augmentation import ColorJitter

            self.jitter = ColorJitter(brightness, contrast, saturation, hue, p=jitter_prob)

    @classmethod
    def from_options(cls, rotate: float, max_angle: float, min_visible: float, jitter: float) -> OBBBatchAugment:
        """The datamodules' ``augment_*`` options: jitter strength ``jitter`` on brightness, contrast and
        saturation, a quarter of it on hue."""
        return cls(rotate_prob=rotate, max_angle=max_angle, min_visible=min_visible, brightness=jitter,
                   contrast=jitter, saturation=jitter, hue=jitter / 4)

    @property
    def active(self) -> bool:
        return (self.rotate_prob > 0 and self.max_angle > 0) or self.jitter is not None

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        images = batch["image"]
        B = images.shape[0]
        if self.rotate_prob > 0 and self.max_angle > 0:
            u = torch.rand(B, 2)
            angles = (2 * u[:, 0] - 1) * math.radians(self.max_angle)
            angles = torch.where(u[:, 1] < self.rotate_prob, angles, torch.zeros_like(angles))
            batch = rotate_batch(batch, angles, self.min_visible)
        if self.jitter is not None:
            batch = dict(batch)
            batch["image"] = self.jitter(batch["image"].float()).clamp(0, 1).to(images.dtype)
        return batch
