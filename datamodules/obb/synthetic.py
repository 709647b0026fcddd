"""``SyntheticOBB``: seeded oriented-object images generated in memory, with analytic labels.

Every image has a smooth textured, noisy background and 1..``max_objects`` shapes, one class per shape kind
(default ``rectangle``, ``ellipse``, ``triangle`` -> classes 0, 1, 2): rotated rectangles, ellipses and
isosceles triangles with a random colour, size, aspect ratio (>= 1.5, so the angle is defined) and angle.
Shapes overlap little (each pair shares at most ``max_overlap`` of the smaller one's area). Rendering is
anti-aliased: the coverage of a pixel is ``clamp(0.5 - d, 0, 1)`` with ``d`` the signed distance (pixels)
from the pixel centre to the shape outline, evaluated for all candidate shapes of an image at once.

Labels come from the shape parameters, never from the rendered mask:

* rectangle ``(cx, cy, w, h, theta)``: the rectangle itself;
* ellipse with semi-axes ``a >= b``: ``(cx, cy, 2a, 2b, theta)``;
* isosceles triangle: the tight box in its symmetry frame. The triangle's base is one full side of the box
  and its apex the midpoint of the opposite side; the symmetry axis runs along the box's w-side or h-side.

Coordinates are continuous pixels (the image covers ``[0, W] x [0, H]``, pixel ``(i, j)`` has its centre at
``(j + 0.5, i + 0.5)``, y down); boxes are ``(cx, cy, w, h, theta)``, radians, clockwise-positive, le90
(``w >= h``, ``theta in [-pi/2, pi/2)``).

Sample dict (per image; :func:`~visionkit.datamodules.base.collate_dict` stacks ``image`` and
``orig_size`` and gives lists for the rest):

* ``image``: ``(3, H, W)`` uint8 (the datamodule makes it float32 in [0, 1] on the device).
* ``boxes``: ``(N, 5)`` float32, the training label in the chosen ``label_mode``: ``'obb'`` the true oriented
  boxes; ``'hbb'`` the shape's tight horizontal box written as an le90 box (``theta = 0`` if wider than
  tall, else ``-pi/2`` with w/h swapped); ``'point'`` zero-size boxes ``(px, py, 0, 0, 0)`` at ``points``.
* ``labels``: ``(N,)`` int64 class indices.
* ``difficult``: ``(N,)`` bool, all False here.
* ``points``: ``(N, 2)`` float32 ``(x, y)`` point labels: the box centre (``point_mode='center'``) or a
  uniformly random point inside the true box (``'random'``, seeded, identical across epochs).
* ``gt_boxes``: ``(N, 5)`` float32, the true oriented boxes in every label mode (for evaluation).
* ``hboxes``: ``(N, 4)`` float32 tight horizontal boxes of the shapes ``(x1, y1, x2, y2)`` (analytic; for a
  triangle or an ellipse tighter than the horizontal box of its OBB).
* ``image_id``: str, ``"<split>_<index>"``.
* ``orig_size``: ``(2,)`` int64 ``(H, W)``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from visionkit.datamodules.base import BaseDataModule
from visionkit.datamodules.obb import transforms as T
from visionkit.datamodules.obb.augment import OBBBatchAugment, flip_rotate_batch
from visionkit.datamodules.obb.transforms import points_in_boxes
from visionkit.ops.rotated_boxes import hbb2obb

__all__ = ["SyntheticOBB", "SyntheticOBBDataset", "render_shapes", "SHAPES"]

SHAPES = ("rectangle", "ellipse", "triangle")
_SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2, "predict": 3}


def _coverage(kind: Tensor, params: Tensor, tri_axis: Tensor, tri_sign: Tensor, H: int, W: int) -> Tensor:
    """Anti-aliased coverage of K shapes on an ``H x W`` grid.

    Args:
        kind: ``(K,)`` long, index into :data:`SHAPES`.
        params: ``(K, 5)`` boxes ``(cx, cy, w, h, theta)`` of the shapes.
        tri_axis: ``(K,)`` bool, triangle symmetry axis along the h-side (True) or the w-side (False).
        tri_sign: ``(K,)`` +-1, direction of the triangle's apex along its axis.
        H, W: image size.

    Returns:
        ``(K, H, W)`` coverage in [0, 1].
    """
    dt = params.dtype
    K = params.shape[0]
    # each shape is evaluated only in a square window around it, the same size S for all shapes
    diag = torch.sqrt(params[:, 2] ** 2 + params[:, 3] ** 2)  # (K,) every shape lies within half of it
    S = min(int(math.ceil(float(diag.max()))) + 3, max(H, W)) if K else 1
    x0 = torch.floor(params[:, 0] - S / 2).long().clamp(0, max(W - S, 0))  # (K,) window corners
    y0 = torch.floor(params[:, 1] - S / 2).long().clamp(0, max(H - S, 0))
    Sx, Sy = min(S, W), min(S, H)
    xs = (x0[:, None] + torch.arange(Sx)).to(dt) + 0.5  # (K, Sx) pixel-centre coordinates
    ys = (y0[:, None] + torch.arange(Sy)).to(dt) + 0.5  # (K, Sy)
    win = params.new_zeros(K, Sy, Sx)
    for k in range(len(SHAPES)):  # one vectorised evaluation per shape kind present
        sel = (kind == k).nonzero().flatten()
        if sel.numel():
            d = _signed_distance(k, params[sel], tri_axis[sel], tri_sign[sel], xs[sel], ys[sel])
            win[sel] = (0.5 - d).clamp(0, 1)
    # paste the windows into full-size maps with one scatter
    flat = (ys[:, :, None].long() * W + xs[:, None, :].long()).reshape(K, -1)  # (K, Sy * Sx)
    out = params.new_zeros(K, H * W).scatter_(1, flat, win.reshape(K, -1))
    return out.view(K, H, W)


def _signed_distance(kind: int, params: Tensor, tri_axis: Tensor, tri_sign: Tensor, xs: Tensor, ys: Tensor) -> Tensor:
    """Signed distance ``(K, Sy, Sx)`` (pixels, negative inside; exact for rectangles and triangles, first order
    for ellipses) of K shapes of one kind at pixel centres ``xs (K, Sx)``, ``ys (K, Sy)``."""
    dt = params.dtype
    cx, cy, w, h, th = (params[:, i, None, None] for i in range(5))
    dx = xs[:, None, :] - cx  # (K, 1, Sx)
    dy = ys[:, :, None] - cy  # (K, Sy, 1)
    c, s = torch.cos(th), torch.sin(th)
    u = dx * c + dy * s  # (K, H, W) coordinate along the w-side
    v = -dx * s + dy * c  # (K, H, W) coordinate along the h-side
    hw, hh = w / 2, h / 2
    if kind == 0:  # rectangle: exact signed distance
        qu, qv = u.abs() - hw, v.abs() - hh
        outside = torch.sqrt(qu.clamp_min(0) ** 2 + qv.clamp_min(0) ** 2)
        return outside + torch.maximum(qu, qv).clamp_max(0)
    if kind == 1:  # ellipse: first-order distance (q - 1) / |grad q| with q = sqrt((u/a)^2 + (v/b)^2)
        q = torch.sqrt((u / hw) ** 2 + (v / hh) ** 2)
        g = torch.sqrt((u / hw**2) ** 2 + (v / hh**2) ** 2).clamp_min(1e-9)
        return (q - 1) * q / g
    # triangle in its symmetry frame (s along the axis towards the apex, t across): base at s = -L/2
    # spanning |t| <= B/2, apex at (L/2, 0)
    axis_v = tri_axis[:, None, None]
    sign = tri_sign[:, None, None].to(dt)
    s_ = torch.where(axis_v, v, u) * sign
    t_ = torch.where(axis_v, u, v).abs()
    L = torch.where(axis_v, h, w)
    B = torch.where(axis_v, w, h)
    d_base = -s_ - L / 2
    d_side = ((s_ - L / 2) * (B / 2) + t_ * L) / torch.sqrt(B**2 / 4 + L**2)
    inside = torch.maximum(d_base, d_side)  # exact inside a convex polygon
    # outside: distance to the nearer of the (half) base segment and the slanted side (symmetric in t)
    db = torch.sqrt((s_ + L / 2) ** 2 + (t_ - t_.clamp(max=B / 2)) ** 2)
    es, et = L, -B / 2  # slanted side from (-L/2, B/2) to (L/2, 0)
    ps, pt = s_ + L / 2, t_ - B / 2
    k = ((ps * es + pt * et) / (es**2 + et**2)).clamp(0, 1)
    ds = torch.sqrt((ps - k * es) ** 2 + (pt - k * et) ** 2)
    return torch.where(inside > 0, torch.minimum(db, ds), inside)


def _tight_hbb(kind: Tensor, params: Tensor, tri_axis: Tensor, tri_sign: Tensor) -> Tensor:
    """Analytic tight horizontal boxes ``(K, 4)`` ``(x1, y1, x2, y2)`` of the shapes (not of their OBBs)."""
    cx, cy, w, h, th = params.unbind(-1)
    c, s = torch.cos(th), torch.sin(th)
    hw, hh = w / 2, h / 2
    # rectangle
    ex_r = (hw * c).abs() + (hh * s).abs()
    ey_r = (hw * s).abs() + (hh * c).abs()
    # ellipse: support function of an ellipse
    ex_e = torch.sqrt((hw * c) ** 2 + (hh * s) ** 2)
    ey_e = torch.sqrt((hw * s) ** 2 + (hh * c) ** 2)
    # triangle: vertices (local u, v) then rotated
    sg = tri_sign.to(params.dtype)
    zero = torch.zeros_like(hw)
    apex_u = torch.where(tri_axis, zero, sg * hw)
    apex_v = torch.where(tri_axis, sg * hh, zero)
    b1u = torch.where(tri_axis, hw, -sg * hw)
    b1v = torch.where(tri_axis, -sg * hh, hh)
    b2u = torch.where(tri_axis, -hw, -sg * hw)
    b2v = torch.where(tri_axis, -sg * hh, -hh)
    U = torch.stack([apex_u, b1u, b2u], -1)  # (K, 3)
    V = torch.stack([apex_v, b1v, b2v], -1)
    X = U * c[:, None] - V * s[:, None]
    Y = U * s[:, None] + V * c[:, None]
    tri = torch.stack([X.amin(-1), Y.amin(-1), X.amax(-1), Y.amax(-1)], -1)
    rect = torch.stack([-ex_r, -ey_r, ex_r, ey_r], -1)
    ell = torch.stack([-ex_e, -ey_e, ex_e, ey_e], -1)
    k = kind[:, None]
    rel = torch.where(k == 0, rect, torch.where(k == 1, ell, tri))
    return rel + torch.stack([cx, cy, cx, cy], -1)


def render_shapes(
    kind: Tensor,
    params: Tensor,
    colors: Tensor,
    background: Tensor,
    tri_axis: Tensor | None = None,
    tri_sign: Tensor | None = None,
) -> Tensor:
    """Paint shapes over a background, in order, with anti-aliased coverage.

    Args:
        kind: ``(K,)`` long, index into :data:`SHAPES`.
        params: ``(K, 5)`` boxes of the shapes ``(cx, cy, w, h, theta)``.
        colors: ``(K, 3)`` in [0, 1].
        background: ``(3, H, W)``.
        tri_axis, tri_sign: triangle orientation (see :func:`_coverage`); default w-side axis, apex at +u.

    Returns:
        ``(3, H, W)`` image.
    """
    K = kind.shape[0]
    tri_axis = torch.zeros(K, dtype=torch.bool) if tri_axis is None else tri_axis
    tri_sign = torch.ones(K) if tri_sign is None else tri_sign
    alpha = _coverage(kind, params, tri_axis, tri_sign, background.shape[-2], background.shape[-1])
    img = background.clone()
    for k in range(K):  # painter's order over the few shapes of one image; pixels are vectorised
        a = alpha[k][None]
        img = img * (1 - a) + a * colors[k, :, None, None]
    return img


def generate_image(
    g: torch.Generator,
    H: int,
    W: int,
    max_objects: int,
    min_size: float,
    max_size: float,
    aspect_range: tuple[float, float],
    shape_kinds: Tensor,
    max_overlap: float,
    noise_std: float,
) -> dict[str, Tensor]:
    """Draw one image and its analytic labels from generator ``g``.

    Returns:
        dict with ``image (3, H, W)``, ``boxes (N, 5)``, ``labels (N,)``, ``kind (N,)``, ``hboxes (N, 4)``,
        ``point_offsets (N, 2)`` (uniform in [-0.5, 0.5)^2, in units of the box sides).
    """
    n_target = int(torch.randint(1, max_objects + 1, (1,), generator=g))
    K = 2 * n_target + 3  # candidates; the first ones that overlap little are kept
    num_classes = shape_kinds.shape[0]
    labels = torch.randint(0, num_classes, (K,), generator=g)
    kind = shape_kinds[labels]
    w = min_size + (max_size - min_size) * torch.rand(K, generator=g, dtype=torch.float64)
    aspect = aspect_range[0] + (aspect_range[1] - aspect_range[0]) * torch.rand(K, generator=g, dtype=torch.float64)
    h = w / aspect
    theta = (torch.rand(K, generator=g, dtype=torch.float64) - 0.5) * math.pi
    tri_axis = torch.rand(K, generator=g) < 0.5
    tri_sign = torch.where(torch.rand(K, generator=g) < 0.5, -1.0, 1.0)
    c, s = torch.cos(theta), torch.sin(theta)
    ex = (w / 2 * c).abs() + (h / 2 * s).abs()
    ey = (w / 2 * s).abs() + (h / 2 * c).abs()
    # centre so that the whole box is inside the image (when it fits)
    ux, uy = torch.rand(K, generator=g, dtype=torch.float64), torch.rand(K, generator=g, dtype=torch.float64)
    cx = ex + ux * (W - 2 * ex).clamp_min(0)
    cy = ey + uy * (H - 2 * ey).clamp_min(0)
    params = torch.stack([cx, cy, w, h, theta], -1)  # (K, 5) float64

    alpha = _coverage(kind, params.float(), tri_axis, tri_sign, H, W)  # (K, H, W)
    flat = alpha.flatten(1)
    area = flat.sum(1)  # (K,)
    inter = flat @ flat.T  # (K, K) shared coverage
    limit = max_overlap * torch.minimum(area[:, None], area[None, :])
    ok = (inter <= limit).tolist()
    keep: list[int] = []
    for k in range(K):  # greedy acceptance over a handful of candidates
        if len(keep) == n_target:
            break
        if all(ok[k][j] for j in keep):
            keep.append(k)
    idx = torch.tensor(keep, dtype=torch.long)

    # background: base colour + two octaves of smooth colour noise
    base = 0.2 + 0.6 * torch.rand(3, 1, 1, generator=g)
    o1 = F.interpolate(torch.randn(1, 3, 5, 5, generator=g), size=(H, W), mode="bilinear", align_corners=False)[0]
    o2 = F.interpolate(torch.randn(1, 3, 17, 17, generator=g), size=(H, W), mode="bilinear", align_corners=False)[0]
    bg = (base + 0.12 * o1 + 0.05 * o2).clamp(0, 1)
    # colours at least 0.35 (Euclidean, RGB) away from the background's base colour when possible
    tries = torch.rand(K, 8, 3, generator=g)
    dist = (tries - base.view(1, 1, 3)).norm(dim=-1)  # (K, 8)
    good = dist >= 0.35
    pick = torch.where(good.any(1), good.float().argmax(1), dist.argmax(1))
    colors = tries[torch.arange(K), pick]  # (K, 3)
    offsets = torch.rand(K, 2, generator=g, dtype=torch.float64) - 0.5
    noise = torch.randn(3, H, W, generator=g)

    img = bg
    a_kept = alpha[idx]
    for j in range(idx.numel()):
        a = a_kept[j][None]
        img = img * (1 - a) + a * colors[idx[j], :, None, None]
    img = (img + noise_std * noise).clamp(0, 1)

    boxes = params[idx].clone()
    boxes[:, 4] = T.wrap_le90(boxes[:, 4])
    return {
        "image": img,
        "boxes": boxes.float(),
        "labels": labels[idx],
        "kind": kind[idx],
        "hboxes": _tight_hbb(kind[idx], params[idx], tri_axis[idx], tri_sign[idx]).float(),
        "point_offsets": offsets[idx],
    }


class SyntheticOBBDataset(Dataset):
    """Rendered images (stored as uint8) with their labels; see the module docstring for the sample keys.

    Args:
        n: number of images.
        split: name used in ``image_id`` and to separate the random streams of the splits.
        seed: data seed; image ``i`` of a split is the same whatever ``n`` is.
        image_size: ``int`` (square) or ``(H, W)``.
        label_mode: ``'obb'``, ``'hbb'`` or ``'point'``.
        point_mode: ``'center'`` or ``'random'``.
        other args: see :class:`SyntheticOBB`.
    """

    def __init__(
        self,
        n: int,
        split: str = "train",
        seed: int = 0,
        image_size: int | tuple[int, int] = 128,
        max_objects: int = 6,
        min_size: float = 16.0,
        max_size: float = 48.0,
        aspect_range: tuple[float, float] = (1.5, 3.0),
        shapes: tuple[str, ...] = SHAPES,
        max_overlap: float = 0.1,
        noise_std: float = 0.03,
        label_mode: str = "obb",
        point_mode: str = "center",
    ) -> None:
        H, W = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        _check_options(label_mode, point_mode, shapes, min_size, max_size, aspect_range, H, W, max_objects)
        self.split, self.label_mode, self.point_mode = split, label_mode, point_mode
        self.H, self.W = H, W
        kinds = torch.tensor([SHAPES.index(s) for s in shapes])
        base = (int(seed) * 7919 + _SPLIT_OFFSET.get(split, 4)) * 10_000_019
        images, self.targets = [], []
        for i in range(n):  # one generator per image: image i does not depend on n
            g = torch.Generator().manual_seed(base + i)
            out = generate_image(g, H, W, max_objects, min_size, max_size, aspect_range, kinds, max_overlap,
                                 noise_std)
            images.append((out.pop("image") * 255).round().to(torch.uint8))
            self.targets.append(out)
        self.images = torch.stack(images) if images else torch.zeros(0, 3, H, W, dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> dict[str, Any]:
        t = self.targets[i]
        gt = t["boxes"]
        if self.point_mode == "center":
            points = gt[:, :2].clone()
        else:
            points = points_in_boxes(gt.double(), t["point_offsets"]).float()
        if self.label_mode == "obb":
            boxes = gt.clone()
        elif self.label_mode == "hbb":
            boxes = hbb2obb(t["hboxes"])
        else:
            boxes = torch.cat([points, torch.zeros(points.shape[0], 3)], 1)
        return {
            "image": self.images[i],  # uint8; float in [0, 1] on the device (BaseDataModule.uint8_image_keys)
            "boxes": boxes,
            "labels": t["labels"].clone(),
            "difficult": torch.zeros(gt.shape[0], dtype=torch.bool),
            "points": points,
            "gt_boxes": gt.clone(),
            "hboxes": t["hboxes"].clone(),
            "image_id": f"{self.split}_{i:06d}",
            "orig_size": torch.tensor([self.H, self.W]),
        }


def _check_options(label_mode, point_mode, shapes, min_size, max_size, aspect_range, H, W, max_objects) -> None:
    key = "data.init_args"
    if label_mode not in ("obb", "hbb", "point"):
        raise ValueError(f"{key}.label_mode: expected 'obb', 'hbb' or 'point', got {label_mode!r}")
    if point_mode not in ("center", "random"):
        raise ValueError(f"{key}.point_mode: expected 'center' or 'random', got {point_mode!r}")
    bad = [s for s in shapes if s not in SHAPES]
    if bad or not shapes:
        raise ValueError(f"{key}.shapes: expected a non-empty subset of {SHAPES}, got {list(shapes)}")
    if not 0 < min_size <= max_size:
        raise ValueError(f"{key}.min_size/max_size: need 0 < min_size <= max_size, got {min_size}, {max_size}")
    if max_size > min(H, W):
        raise ValueError(f"{key}.max_size: {max_size} does not fit in a {H}x{W} image")
    if not 1.5 <= aspect_range[0] <= aspect_range[1]:
        raise ValueError(f"{key}.aspect_range: need 1.5 <= low <= high (the angle must be defined), "
                         f"got {tuple(aspect_range)}")
    if max_objects < 1:
        raise ValueError(f"{key}.max_objects: need >= 1, got {max_objects}")


class SyntheticOBB(BaseDataModule):
    """Seeded synthetic oriented-object detection data (the obb family's default datamodule).

    Images are rendered once at :meth:`setup` (a few milliseconds each at 128x128) and kept in memory as
    uint8. Sample keys are listed in the module docstring.

    Args:
        num_train, num_val, num_test: images per split.
        image_size: side of the square images (pixels).
        max_objects: objects per image are uniform in ``1..max_objects``.
        min_size, max_size: range of the long side ``w`` (pixels).
        aspect_range: range of ``w / h`` (>= 1.5).
        shapes: shape kinds, one class each, in class order.
        max_overlap: largest shared area of two shapes, as a fraction of the smaller one.
        noise_std: std of the per-pixel gaussian noise.
        label_mode: ``'obb'`` | ``'hbb'`` | ``'point'`` (what ``boxes`` holds; ``gt_boxes`` is always the OBB).
        point_mode: ``'center'`` | ``'random'`` (uniform inside the true box).
        data_seed: seed of the generated data (``seed`` only drives shuffling).
        augment_flips: on training batches, random horizontal/vertical flips and 90° turns (device side).
        augment_rotate: probability of turning a training image by a uniform angle in
            ``[-augment_max_angle, augment_max_angle]`` degrees (device side, kornia; see
            :mod:`~visionkit.datamodules.obb.augment`); objects keeping less than ``augment_min_visible`` of
            their area inside the image are dropped. Not with ``label_mode='hbb'`` (a turned horizontal box is
            no longer the tight one).
        augment_max_angle, augment_min_visible: see ``augment_rotate``.
        augment_jitter: strength of the photometric jitter (brightness, contrast, saturation; hue at a
            quarter of it), 0 disables.
        **kwargs: :class:`~visionkit.datamodules.base.BaseDataModule` arguments.
    """

    uint8_image_keys = ("image",)

    def __init__(
        self,
        num_train: int = 1000,
        num_val: int = 200,
        num_test: int = 200,
        image_size: int = 128,
        max_objects: int = 6,
        min_size: float = 16.0,
        max_size: float = 48.0,
        aspect_range: tuple[float, float] = (1.5, 3.0),
        shapes: tuple[str, ...] = SHAPES,
        max_overlap: float = 0.1,
        noise_std: float = 0.03,
        label_mode: Literal["obb", "hbb", "point"] = "obb",
        point_mode: Literal["center", "random"] = "center",
        data_seed: int = 0,
        augment_flips: bool = False,
        augment_rotate: float = 0.0,
        augment_max_angle: float = 180.0,
        augment_min_visible: float = 0.6,
        augment_jitter: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if augment_rotate > 0 and label_mode == "hbb":
            raise ValueError("data.init_args.augment_rotate: arbitrary turns need label_mode 'obb' or 'point', "
                             "not 'hbb'")
        _check_options(label_mode, point_mode, shapes, min_size, max_size, aspect_range, image_size, image_size,
                       max_objects)
        self.n = {"train": num_train, "val": num_val, "test": num_test}
        self.common = dict(seed=data_seed, image_size=image_size, max_objects=max_objects, min_size=min_size,
                           max_size=max_size, aspect_range=tuple(aspect_range), shapes=tuple(shapes),
                           max_overlap=max_overlap, noise_std=noise_std, label_mode=label_mode,
                           point_mode=point_mode)
        self.class_names = list(shapes)
        self.num_classes = len(shapes)
        self.image_size = image_size
        self.augment_flips = augment_flips
        self.batch_augment = OBBBatchAugment.from_options(augment_rotate, augment_max_angle, augment_min_visible,
                                                          augment_jitter)

    def _make(self, split: str) -> SyntheticOBBDataset:
        return SyntheticOBBDataset(self.n[split], split=split, **self.common)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_dataset is None:
            self.train_dataset = self._make("train")
        if stage in (None, "fit", "validate") and self.val_dataset is None:
            self.val_dataset = self._make("val")
        if stage in (None, "test", "predict") and self.test_dataset is None:
            self.test_dataset = self._make("test")

    def augment(self, batch: dict[str, Any]) -> dict[str, Any]:
        if self.augment_flips:
            batch = flip_rotate_batch(batch, rot90_prob=0.75)
        return self.batch_augment(batch) if self.batch_augment.active else batch
