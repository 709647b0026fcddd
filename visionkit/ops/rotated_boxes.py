"""Oriented (rotated) box geometry: conversions, exact rotated IoU, rotated NMS, point-in-box queries.

Conventions (everywhere in visionkit):

- A box is ``(cx, cy, w, h, theta)``: centre, width, height (``w, h >= 0``, same unit as the image, pixels)
  and angle ``theta`` in **radians**, **clockwise-positive in image coordinates** (x right, y down): the
  width axis is ``(cos theta, sin theta)`` and the height axis is ``(-sin theta, cos theta)``.
- Corners follow mmrotate's order: with ``v1 = (w/2 cos theta, w/2 sin theta)`` and
  ``v2 = (-h/2 sin theta, h/2 cos theta)`` the polygon is ``c+v1+v2, c+v1-v2, c-v1-v2, c-v1+v2``
  (:func:`obb2poly`, ``(N, 8)`` as ``x1 y1 ... x4 y4``).
- Angle versions (:func:`regularize_obb`), as defined by mmrotate:
  ``le90``: ``w >= h``, ``theta`` in ``[-pi/2, pi/2)``; ``le135``: ``w >= h``, ``theta`` in ``[-pi/4, 3pi/4)``;
  ``oc``: ``theta`` in ``(0, pi/2]`` (OpenCV's ``minAreaRect`` before 4.5.1), ``w``/``h`` swapped as needed.
- torchvision's ``cxcywhr`` format uses degrees, counter-clockwise-positive in the image plane:
  ``r = -degrees(theta)`` (:func:`obb_to_torchvision`, :func:`obb_from_torchvision`).

The rotated IoU is exact: every edge of one box is clipped against the four half-planes of the other box
(Liang-Barsky, in the frame of the smaller box), the parts of the clipping box's edges that lie inside the
other box are taken from the same crossing points, and the intersection area is the closed boundary integral
``area = sum over boundary segments of integral y dx`` (the trapezoid form of the shoelace formula). In the frame
of the clipping box its two vertical sides contribute nothing, so the boundary stays closed without ordering or
compacting vertices, which keeps every pair at a fixed size and the whole computation vectorised. The result is
differentiable almost everywhere (gradients flow for IoU losses). Pairs are first filtered by their enclosing
axis-aligned boxes (a sort-and-sweep along x, dense per block of boxes); tiles of the matrix where most pairs
overlap are clipped as one broadcast block, the other pairs gathered and clipped in fixed-size chunks, so the
temporary memory is bounded whatever the number of boxes.

Rotated NMS works in blocks of open boxes in score order: the block's IoUs with the later open boxes (after a
cheap upper bound from the enclosing boxes) give the greedy decision inside the block, and its kept boxes
suppress later ones, so on dense layouts only a few rows of the pair graph are computed. When the statistics
measured on the first blocks say that the remaining suppression graph is cheaper (sparse layouts), that graph
is built once and the greedy order resolved on it in vectorised rounds. Both routes give exactly the greedy
result. Under ``torch.autocast`` both ops turn autocast off and compute in float32 (float64 for float64 boxes).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "VERSIONS",
    "obb2poly",
    "obb2corners",
    "poly2obb",
    "regularize_obb",
    "obb2hbb",
    "hbb2obb",
    "obb_to_torchvision",
    "obb_from_torchvision",
    "box_iou_rotated",
    "nms_rotated",
    "batched_nms_rotated",
    "rotated_iou_loss",
    "points_in_obb",
    "point_to_obb_sides",
]

VERSIONS = ("le90", "le135", "oc")

# pairs clipped per chunk (about 1-2 KB of temporaries per pair)
_PAIR_CHUNK = 1 << 14
# rows per block of the dense axis-aligned prefilter
_BLOCK = 128
# NMS: open boxes in the first block of rows, most rows per block, fixed cost of a round and of building a
# suppression graph, in units of one exact pair IoU (measured on CPU, one thread)
_NMS_FIRST_ROWS = 4
_NMS_MAX_ROWS = 64
_NMS_ROUND_COST = 3000
_NMS_GRAPH_COST = 10000
# screening one pair with the enclosing-box bound, in the same unit
_NMS_SCREEN_COST = 0.25
# open boxes whose pairs are all screened at once when their number squared is at most this
_NMS_SMALL = 1 << 16
# a tile of the pairwise matrix is computed densely (broadcast) when at least 1 / _DENSE_SHARE of its pairs overlap
_DENSE_SHARE = 2


def _check_boxes(boxes: Tensor, name: str = "boxes") -> Tensor:
    if not torch.is_tensor(boxes):
        boxes = torch.as_tensor(boxes)
    if boxes.ndim != 2 or boxes.shape[-1] != 5:
        raise ValueError(f"{name} must have shape (N, 5) as (cx, cy, w, h, theta), got {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        boxes = boxes.to(torch.get_default_dtype())
    return boxes


# ----------------------------------------------------------------------------------------------- conversions
def obb2corners(boxes: Tensor) -> Tensor:
    """Corners of oriented boxes.

    Args:
        boxes: ``(N, 5)`` as ``(cx, cy, w, h, theta)``, radians, clockwise-positive (y down).

    Returns:
        ``(N, 4, 2)`` corners ``c+v1+v2, c+v1-v2, c-v1-v2, c-v1+v2`` (mmrotate's order).
    """
    boxes = _check_boxes(boxes)
    cx, cy, w, h, t = boxes.unbind(-1)
    c, s = torch.cos(t), torch.sin(t)
    v1x, v1y = 0.5 * w * c, 0.5 * w * s
    v2x, v2y = -0.5 * h * s, 0.5 * h * c
    xs = torch.stack([cx + v1x + v2x, cx + v1x - v2x, cx - v1x - v2x, cx - v1x + v2x], dim=-1)
    ys = torch.stack([cy + v1y + v2y, cy + v1y - v2y, cy - v1y - v2y, cy - v1y + v2y], dim=-1)
    return torch.stack([xs, ys], dim=-1)


def obb2poly(boxes: Tensor) -> Tensor:
    """Oriented boxes ``(N, 5)`` to polygons ``(N, 8)`` as ``x1 y1 x2 y2 x3 y3 x4 y4`` (see :func:`obb2corners`)."""
    return obb2corners(boxes).reshape(-1, 8)


def regularize_obb(boxes: Tensor, version: str = "le90") -> Tensor:
    """Bring oriented boxes to the canonical form of an angle version; the polygons are unchanged.

    Args:
        boxes: ``(N, 5)`` as ``(cx, cy, w, h, theta)``, any angle.
        version: ``'le90'`` (``w >= h``, ``theta`` in ``[-pi/2, pi/2)``), ``'le135'`` (``w >= h``, ``theta`` in
            ``[-pi/4, 3pi/4)``) or ``'oc'`` (``theta`` in ``(0, pi/2]``, ``w``/``h`` swapped as needed).
            Squares (``w == h``) keep their angle modulo ``pi`` in ``le90``/``le135``.

    Returns:
        ``(N, 5)`` boxes describing the same rectangles.
    """
    boxes = _check_boxes(boxes)
    cx, cy, w, h, t = boxes.unbind(-1)
    if version in ("le90", "le135"):
        swap = w < h
        w2, h2 = torch.where(swap, h, w), torch.where(swap, w, h)
        t = torch.where(swap, t + math.pi / 2, t)
        lo = -math.pi / 2 if version == "le90" else -math.pi / 4
        t = torch.remainder(t - lo, math.pi) + lo
        # remainder can round up to exactly pi for tiny negative inputs
        t = torch.where(t >= lo + math.pi, t - math.pi, t)
        t = torch.where(t < lo, t + math.pi, t)
        return torch.stack([cx, cy, w2, h2, t], dim=-1)
    if version == "oc":
        half = math.pi / 2
        k = torch.ceil(t / half) - 1
        t = t - k * half
        # guard the rounding of the division near multiples of pi/2
        k = torch.where(t <= 0, k - 1, k)
        t = torch.where(t <= 0, t + half, t)
        k = torch.where(t > half, k + 1, k)
        t = torch.where(t > half, t - half, t)
        swap = torch.remainder(k, 2) == 1
        w2, h2 = torch.where(swap, h, w), torch.where(swap, w, h)
        return torch.stack([cx, cy, w2, h2, t], dim=-1)
    raise ValueError(f"unknown angle version {version!r}; expected one of {VERSIONS}")


def poly2obb(polys: Tensor, version: str = "le90") -> Tensor:
    """Minimum-area enclosing rectangle of quadrilaterals, as regularised oriented boxes.

    The optimal rectangle has a side along an edge of the convex hull of the four points; every hull edge is
    one of the six segments between the points, so the six directions are tried at once (each gives a valid
    enclosing rectangle) and the smallest area wins. No OpenCV.

    Args:
        polys: ``(N, 8)`` as ``x1 y1 ... x4 y4`` (any order, convex or not) or ``(N, 4, 2)``.
        version: angle version of the result (see :func:`regularize_obb`).

    Returns:
        ``(N, 5)`` boxes ``(cx, cy, w, h, theta)``.
    """
    if not torch.is_tensor(polys):
        polys = torch.as_tensor(polys)
    if not polys.is_floating_point():
        polys = polys.to(torch.get_default_dtype())
    if polys.shape[-1] == 8 and polys.ndim == 2:
        pts = polys.reshape(-1, 4, 2)
    elif polys.ndim == 3 and polys.shape[-2:] == (4, 2):
        pts = polys
    else:
        raise ValueError(f"polys must have shape (N, 8) or (N, 4, 2), got {tuple(polys.shape)}")
    n = pts.shape[0]
    if n == 0:
        return pts.new_zeros(0, 5)
    ii = torch.tensor([0, 0, 0, 1, 1, 2], device=pts.device)
    jj = torch.tensor([1, 2, 3, 2, 3, 3], device=pts.device)
    e = pts[:, jj] - pts[:, ii]  # (N, 6, 2)
    norm = e.norm(dim=-1)  # (N, 6)
    ok = norm > 0
    u = torch.where(ok[..., None], e / norm.clamp_min(torch.finfo(pts.dtype).tiny)[..., None],
                    torch.tensor([1.0, 0.0], dtype=pts.dtype, device=pts.device))
    v = torch.stack([-u[..., 1], u[..., 0]], dim=-1)  # (N, 6, 2)
    pu = torch.einsum("nkd,npd->nkp", u, pts)  # (N, 6, 4)
    pv = torch.einsum("nkd,npd->nkp", v, pts)
    umin, umax = pu.amin(-1), pu.amax(-1)
    vmin, vmax = pv.amin(-1), pv.amax(-1)
    area = (umax - umin) * (vmax - vmin)
    area = torch.where(ok, area, torch.full_like(area, math.inf))
    best = area.argmin(dim=1, keepdim=True)  # (N, 1); all-coincident points fall back to direction 0
    pick = lambda x: x.gather(1, best).squeeze(1)  # noqa: E731
    umin, umax, vmin, vmax = pick(umin), pick(umax), pick(vmin), pick(vmax)
    ub = u.gather(1, best[..., None].expand(-1, -1, 2)).squeeze(1)  # (N, 2)
    vb = v.gather(1, best[..., None].expand(-1, -1, 2)).squeeze(1)
    cu, cv = 0.5 * (umin + umax), 0.5 * (vmin + vmax)
    centre = ub * cu[:, None] + vb * cv[:, None]
    theta = torch.atan2(ub[:, 1], ub[:, 0])
    boxes = torch.stack([centre[:, 0], centre[:, 1], umax - umin, vmax - vmin, theta], dim=-1)
    return regularize_obb(boxes, version)


def obb2hbb(boxes: Tensor) -> Tensor:
    """Axis-aligned boxes ``(N, 4)`` as ``xyxy`` enclosing the oriented boxes ``(N, 5)``."""
    boxes = _check_boxes(boxes)
    cx, cy, w, h, t = boxes.unbind(-1)
    c, s = torch.cos(t).abs(), torch.sin(t).abs()
    ex = 0.5 * (w * c + h * s)
    ey = 0.5 * (w * s + h * c)
    return torch.stack([cx - ex, cy - ey, cx + ex, cy + ey], dim=-1)


def hbb2obb(boxes: Tensor, version: str = "le90") -> Tensor:
    """Axis-aligned ``xyxy`` boxes ``(N, 4)`` to oriented boxes ``(N, 5)`` in the given angle version."""
    if not torch.is_tensor(boxes):
        boxes = torch.as_tensor(boxes)
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (N, 4) as xyxy, got {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        boxes = boxes.to(torch.get_default_dtype())
    x1, y1, x2, y2 = boxes.unbind(-1)
    obb = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, torch.zeros_like(x1)], dim=-1)
    return regularize_obb(obb, version)


def obb_to_torchvision(boxes: Tensor) -> Tensor:
    """Our boxes ``(N, 5)`` (radians, clockwise in image coordinates) to torchvision's ``cxcywhr``
    (degrees, counter-clockwise in the image plane), e.g. for ``torchvision.ops.box_iou(..., fmt='cxcywhr')``."""
    boxes = _check_boxes(boxes)
    return torch.cat([boxes[:, :4], torch.rad2deg(-boxes[:, 4:5])], dim=-1)


def obb_from_torchvision(boxes: Tensor) -> Tensor:
    """torchvision ``cxcywhr`` boxes ``(N, 5)`` (degrees, counter-clockwise) to ours (radians, clockwise)."""
    boxes = _check_boxes(boxes)
    return torch.cat([boxes[:, :4], -torch.deg2rad(boxes[:, 4:5])], dim=-1)


# ------------------------------------------------------------------------------------------------------- IoU
# rows of a box table (one column per box): centre, half sides, rotation into the box's frame, area, corners
_AREA = 8
_TABLE_ROWS = (2, 2, 4, 1, 8)  # centre, half sides, rotation, area, corners


def _box_table(boxes: Tensor) -> Tensor:
    """Per-box constants ``(17, N)``: cx, cy, w/2, h/2; the rotation into the box's frame as rows ``(cos, sin)``,
    ``(-sin, cos)``; the area; the four corners relative to the centre in the image frame (x of corners 0-3, then
    y), corners in the order ``+u+v, +u-v, -u-v, -u+v`` along the box's width (u) and height (v) axes."""
    cx, cy, w, h, t = boxes.unbind(-1)
    hw, hh = 0.5 * w.clamp_min(0), 0.5 * h.clamp_min(0)
    c, s = torch.cos(t), torch.sin(t)
    uc, us, vc, vs = hw * c, hw * s, hh * c, hh * s  # u = hw (c, s), v = hh (-s, c)
    return torch.stack([cx, cy, hw, hh, c, s, -s, c, 4 * hw * hh,
                        uc - vs, uc + vs, vs - uc, -uc - vs, us + vc, us - vc, -us - vc, vc - us])


def _hbb(tab: Tensor) -> Tensor:
    """Enclosing axis-aligned boxes ``(4, N)`` as x1, y1, x2, y2 from a box table (or from the rows cx, cy,
    w / 2, h / 2, cos, sin)."""
    cx, cy, hw, hh, c, s = tab[:6]
    c, s = c.abs(), s.abs()
    ex = hw * c + hh * s
    ey = hw * s + hh * c
    return torch.stack([cx - ex, cy - ey, cx + ex, cy + ey])


def _box_hbb(boxes: Tensor) -> Tensor:
    """Enclosing axis-aligned boxes ``(4, N)`` of boxes ``(N, 5)``, without the whole box table."""
    cx, cy, w, h, t = boxes.unbind(-1)
    return _hbb(torch.stack([cx, cy, 0.5 * w.clamp_min(0), 0.5 * h.clamp_min(0), torch.cos(t), torch.sin(t)]))


def _intersection(a: Tensor, b: Tensor) -> Tensor:
    """Exact intersection areas ``(...)`` of aligned pairs of box tables ``a, b`` (``(17, ...)``).

    Works in the frame of ``b`` (origin at its centre, axes along its sides), where ``b`` is
    ``[-hw, hw] x [-hh, hh]``. Boundary integral (clockwise, so area = closed integral of y dx):
    the parts of ``a``'s edges inside ``b`` (Liang-Barsky against the four sides), plus ``b``'s top and bottom
    sides between the points where ``a``'s boundary leaves and re-enters them (the very same crossing points,
    so the boundary is closed even for nearly parallel edges); ``b``'s vertical sides add nothing.
    Branch-free arithmetic (no ``where``) on stacked tensors: about 50 tensor operations whatever the number of
    pairs, which is what keeps it fast on CPU for the small pair lists of NMS.
    """
    tiny = torch.finfo(a.dtype).tiny
    # one split per table (not one slice per row group: cheaper in backward)
    a_centre, _, _, a_area, a_corners = a.split(_TABLE_ROWS)
    b_centre, b_half, b_rot, b_area, _ = b.split(_TABLE_ROWS)
    rot = b_rot.unflatten(0, (2, 2))  # rows (cos, sin), (-sin, cos) of b
    p = (rot * (a_centre - b_centre)[None]).sum(1)  # a's centre in b's frame (2, ...)
    # a's corners in b's frame (x/y, 4, ...); edge e runs from corner e to e + 1
    c = (rot[:, :, None] * a_corners.unflatten(0, (2, 4))[None]).sum(1) + p[:, None]
    e = c.roll(-1, 1) - c
    x, y = c
    ex, ey = e
    # signed distances (positive outside) to b's sides: (sign, axis, 4 edges, ...), i.e. x = hw, y = hh, then
    # x = -hw, y = -hh, at edge starts
    s0 = torch.stack([c, -c]) - b_half[:, None]
    p0 = s0.clamp_min(0)
    n0 = p0 - s0
    p1, n1 = p0.roll(-1, 2), n0.roll(-1, 2)  # at edge ends
    # Liang-Barsky: the part of the edge inside a side is [t_in, t_out]; t_in = 0 when the start is inside,
    # the crossing when it enters, ~1 when both ends are outside; t_out symmetric.
    t_in = p0 / (p0 + n1).add_(tiny)
    t_out = 1 - p1 / (p1 + n0).add_(tiny)
    lo, hi = t_in.flatten(0, 1).amax(0), t_out.flatten(0, 1).amin(0)  # (4, ...)
    # twice the integral of y dx over the clipped edge = (x_hi - x_lo) * (y_lo + y_hi)
    area = ((hi - lo).clamp_min(0) * ex * torch.addcmul(y + y, lo + hi, ey)).sum(0)
    # b's top (y = hh, run in +x) and bottom (y = -hh, run in -x) sides inside a: from where a's boundary
    # leaves the side's half-plane to where it re-enters, clipped to [-hw, hw]
    in0 = s0[:, 1] <= 0  # (top/bottom, 4, ...)
    in1 = in0.roll(-1, 1)
    x_leave = ((in0 > in1) * torch.addcmul(x, t_out[:, 1], ex)).sum(1)  # (2, ...); 0 when a's boundary does not
    x_enter = ((in1 > in0) * torch.addcmul(x, t_in[:, 1], ex)).sum(1)  # cross the side
    bhw, bhh = b_half
    x_leave, x_enter = torch.stack([x_leave, x_enter]).clamp(-bhw, bhw)
    run = x_enter - x_leave
    area = area * 0.5 + bhh * (run[0] - run[1])
    return torch.minimum(area.clamp_min(0), torch.minimum(a_area[0], b_area[0]))


def _pair_values(tab: Tensor, i: Tensor, j: Tensor, mode: str) -> Tensor:
    """IoU / IoF ``(K,)`` of the pairs ``(i[k], j[k])`` of columns of one box table ``(17, N)``, chunked."""
    out = []
    for start in range(0, i.shape[0], _PAIR_CHUNK):
        ii, jj = i[start:start + _PAIR_CHUNK], j[start:start + _PAIR_CHUNK]
        area = tab[_AREA]
        a1, a2 = area.index_select(0, ii), area.index_select(0, jj)
        # clip in the frame of the smaller box: the intersection then has coordinates bounded by its size
        small_first = a1 <= a2
        ib = torch.where(small_first, ii, jj)
        ia = torch.where(small_first, jj, ii)
        inter = _intersection(tab.index_select(1, ia), tab.index_select(1, ib))  # (index_select: fast gathers)
        den = a1 if mode == "iof" else a1 + a2 - inter
        out.append(inter / den.clamp_min(torch.finfo(tab.dtype).tiny))
    return torch.cat(out) if out else tab.new_zeros(0)


def _values(r: Tensor, c: Tensor, mode: str) -> Tensor:
    """IoU / IoF of the pairs of columns of two broadcastable box tables ``(17, ...)``, clipped in the frame of
    the smaller box of each pair (the intersection then has coordinates bounded by its size)."""
    a1, a2 = r[_AREA], c[_AREA]
    small_first = (a1 <= a2)[None]
    inter = _intersection(torch.where(small_first, c, r), torch.where(small_first, r, c))
    den = a1 if mode == "iof" else a1 + a2 - inter
    return inter / den.clamp_min(torch.finfo(r.dtype).tiny)


def _aligned_values(b1: Tensor, b2: Tensor, mode: str) -> Tensor:
    """IoU / IoF ``(K,)`` of boxes ``b1[k]`` and ``b2[k]`` (``(K, 5)``); as :func:`_values`, with the pairs
    ordered by area before the boxes are tabulated (5 numbers per box to move instead of 17)."""
    a1 = b1[:, 2].clamp_min(0) * b1[:, 3].clamp_min(0)
    a2 = b2[:, 2].clamp_min(0) * b2[:, 3].clamp_min(0)
    small_first = (a1 <= a2)[:, None]
    inter = _intersection(_box_table(torch.where(small_first, b2, b1)), _box_table(torch.where(small_first, b1, b2)))
    den = a1 if mode == "iof" else a1 + a2 - inter
    return inter / den.clamp_min(torch.finfo(b1.dtype).tiny)


def _grid_values(t1: Tensor, t2: Tensor, mode: str) -> Tensor:
    """IoU / IoF ``(R, C)`` of every pair of columns of two box tables ``(17, R)``, ``(17, C)`` (one block: the
    pairs are broadcast, not gathered)."""
    return _values(t1[:, :, None], t2[:, None, :], mode)


def _candidate_blocks(h1: Tensor, h2: Tensor):
    """Blocks of pairs whose enclosing axis-aligned boxes overlap with positive area, for a pairwise matrix.

    Both sets are sorted by x1; each block of rows is compared with the contiguous run of columns whose x1 can
    fall inside the block's x-range (sort and sweep), cut into tiles of at most ``_PAIR_CHUNK`` pairs.

    Yields:
        ``(rows, cols, mask)``: original row indices ``(R,)``, column indices ``(C,)`` and the overlap mask
        ``(R, C)`` of one tile with at least one overlapping pair.
    """
    dev = h1.device
    o1, o2 = torch.argsort(h1[0]), torch.argsort(h2[0])
    s1, s2 = h1[:, o1].contiguous(), h2[:, o2].contiguous()
    n = s1.shape[1]
    block = _BLOCK
    starts = torch.arange(0, n, block, device=dev)
    pad = torch.nn.functional.pad(s1[2], (0, (-n) % block), value=-math.inf)
    ends = torch.searchsorted(s2[0], pad.view(-1, block).amax(1), side="left").tolist()
    # a column overlaps a row in x only if its x1 > row x1 - (widest column)
    widest = (s2[2] - s2[0]).max()
    begins = torch.searchsorted(s2[0], s1[0, starts] - widest, side="left").tolist()
    for k, r0 in enumerate(starts.tolist()):  # blocks of boxes, not boxes
        r1 = min(r0 + block, n)
        step = max(1, _PAIR_CHUNK // (r1 - r0))
        for c0 in range(begins[k], ends[k], step):
            c1 = min(c0 + step, ends[k])
            r, c = s1[:, r0:r1, None], s2[:, None, c0:c1]
            mask = (c[0] < r[2]) & (c[2] > r[0]) & (c[1] < r[3]) & (c[3] > r[1])  # (rows, cols)
            if bool(mask.any()):
                yield o1[r0:r1], o2[c0:c1], mask


def _candidates(h: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Index pairs ``i < j`` within one set whose enclosing axis-aligned boxes ``h (4 or more, N)`` (x1, y1, x2, y2)
    overlap with positive area (and, with ``labels``, have equal labels).

    The boxes are sorted by x1; each block of rows is compared densely with the contiguous run of columns whose
    x1 can fall inside the block's x-range, so the work grows with the number of x-overlapping pairs, not N^2.
    """
    dev = h.device
    o = torch.argsort(h[0])
    sh = h.index_select(1, o).contiguous()
    n = sh.shape[1]
    empty = torch.zeros(0, dtype=torch.long, device=dev)
    if n == 0:
        return empty, empty
    block = _BLOCK
    starts = torch.arange(0, n, block, device=dev)
    pad = torch.nn.functional.pad(sh[2], (0, (-n) % block), value=-math.inf)
    ends = torch.searchsorted(sh[0], pad.view(-1, block).amax(1), side="left").tolist()
    lab = labels.index_select(0, o) if labels is not None else None
    out_i, out_j = [], []
    for r0, c1 in zip(starts.tolist(), ends):  # blocks of boxes, not boxes
        r1, c0 = min(r0 + block, n), r0
        if c1 <= c0:
            continue
        r, c = sh[:, r0:r1, None], sh[:, None, c0:c1]
        mask = (c[0] < r[2]) & (c[2] > r[0]) & (c[1] < r[3]) & (c[3] > r[1])  # (rows, cols)
        mask = torch.triu(mask, diagonal=1)  # c0 == r0: column k > row k
        if lab is not None:
            mask &= lab[r0:r1, None] == lab[None, c0:c1]
        ii, jj = mask.nonzero(as_tuple=True)
        out_i.append(ii + r0)
        out_j.append(jj + c0)
    if not out_i:
        return empty, empty
    i, j = o.index_select(0, torch.cat(out_i)), o.index_select(0, torch.cat(out_j))
    return torch.minimum(i, j), torch.maximum(i, j)


def _no_autocast(device: torch.device):
    """A context that turns autocast off on ``device``'s type (the ops compute in float32 / float64)."""
    return torch.autocast(device.type, enabled=False)


def box_iou_rotated(boxes1: Tensor, boxes2: Tensor, mode: str = "iou", aligned: bool = False) -> Tensor:
    """Exact IoU (or IoF) of oriented boxes.

    Only pairs whose enclosing axis-aligned boxes overlap are clipped: a tile of the matrix where most pairs
    overlap is computed as one broadcast block, sparse tiles as gathered pairs. Tiles hold at most
    ``_PAIR_CHUNK`` pairs, so the temporary memory stays bounded (about 1-2 KB per pair of a tile) whatever the
    size of the matrix, when no gradient is recorded. Differentiable almost everywhere. Zero-area boxes give 0,
    never NaN. Inputs in half precision (or under ``torch.autocast``) are computed in float32.

    Args:
        boxes1: ``(N, 5)`` as ``(cx, cy, w, h, theta)``, radians, clockwise-positive (y down).
        boxes2: ``(M, 5)``, same convention (``M == N`` when ``aligned``).
        mode: ``'iou'`` (intersection / union) or ``'iof'`` (intersection / area of ``boxes1``).
        aligned: compare ``boxes1[k]`` with ``boxes2[k]`` only.

    Returns:
        ``(N, M)`` pairwise values, or ``(N,)`` when ``aligned``; float64 for float64 inputs, else float32.
    """
    if mode not in ("iou", "iof"):
        raise ValueError(f"mode must be 'iou' or 'iof', got {mode!r}")
    boxes1, boxes2 = _check_boxes(boxes1, "boxes1"), _check_boxes(boxes2, "boxes2")
    with _no_autocast(boxes1.device):
        return _box_iou(boxes1, boxes2, mode, aligned)


def _box_iou(boxes1: Tensor, boxes2: Tensor, mode: str, aligned: bool) -> Tensor:
    dtype = torch.promote_types(boxes1.dtype, boxes2.dtype)
    work = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    n, m = boxes1.shape[0], boxes2.shape[0]
    if aligned and n != m:
        raise ValueError(f"aligned IoU needs as many boxes1 as boxes2, got {n} and {m}")
    if aligned:  # gather the overlapping boxes, then tabulate them (cheaper in backward than gathering tables)
        b1, b2 = boxes1.to(work), boxes2.to(work)
        with torch.no_grad():
            h1, h2 = _box_hbb(b1), _box_hbb(b2)
        ov = (h1[0] < h2[2]) & (h1[2] > h2[0]) & (h1[1] < h2[3]) & (h1[3] > h2[1])
        idx = torch.nonzero(ov).squeeze(1)
        vals = [_aligned_values(b1.index_select(0, k), b2.index_select(0, k), mode) for k in idx.split(_PAIR_CHUNK)]
        return b1.new_zeros(n).index_put((idx,), torch.cat(vals) if vals else b1.new_zeros(0))
    t1, t2 = _box_table(boxes1.to(work)), _box_table(boxes2.to(work))  # (17, N), (17, M)
    h1, h2 = _hbb(t1.detach()), _hbb(t2.detach())
    if n == 0 or m == 0:
        return t1.new_zeros(n, m)
    grad = torch.is_grad_enabled() and (t1.requires_grad or t2.requires_grad)
    if grad:  # one out-of-place scatter at the end keeps the graph small
        flat, vals = [], []
    else:
        out = t1.new_zeros(n, m)
        flat_out = out.view(-1)
    tab = torch.cat([t1, t2], 1)
    pend_i, pend_j, pending = [], [], 0

    def flush():
        nonlocal pend_i, pend_j, pending
        i, j = torch.cat(pend_i), torch.cat(pend_j)
        v = _pair_values(tab, i, j + n, mode)
        if grad:
            flat.append(i * m + j)
            vals.append(v)
        else:
            flat_out.index_copy_(0, i * m + j, v)
        pend_i, pend_j, pending = [], [], 0

    for rows, cols, mask in _candidate_blocks(h1, h2):
        count = int(mask.sum())
        if count * _DENSE_SHARE >= mask.numel():  # mostly overlapping: one broadcast block, no gather
            v = _grid_values(t1.index_select(1, rows), t2.index_select(1, cols), mode) * mask
            if grad:
                flat.append((rows[:, None] * m + cols[None, :]).reshape(-1))
                vals.append(v.reshape(-1))
            else:
                out[rows[:, None], cols[None, :]] = v
            continue
        ii, jj = mask.nonzero(as_tuple=True)
        pend_i.append(rows.index_select(0, ii))
        pend_j.append(cols.index_select(0, jj))
        pending += count
        if pending >= _PAIR_CHUNK:
            flush()
    if pending:
        flush()
    if not grad:
        return out
    if not flat:
        return t1.new_zeros(n, m)
    return t1.new_zeros(n * m).index_put((torch.cat(flat),), torch.cat(vals)).view(n, m)


def rotated_iou_loss(pred: Tensor, target: Tensor, mode: str = "log", eps: float = 1e-6) -> Tensor:
    """IoU loss of aligned oriented boxes ``(N, 5)`` -> ``(N,)``: ``-log(max(IoU, eps))`` or ``1 - IoU``."""
    iou = box_iou_rotated(pred, target, aligned=True)
    if mode == "log":
        return -torch.log(iou.clamp_min(eps))
    if mode == "linear":
        return 1 - iou
    raise ValueError(f"mode must be 'log' or 'linear', got {mode!r}")


# ------------------------------------------------------------------------------------------------------- NMS
def _may_exceed(gi: Tensor, gj: Tensor, iou_threshold: float) -> Tensor:
    """Whether pairs of boxes (rows x1, y1, x2, y2 of the enclosing boxes and area, ``(5, ...)``, broadcast) can
    have an IoU above the threshold: their enclosing boxes overlap with positive area and the cheap upper bound
    ``inter <= min(hbb intersection, a1, a2)``, ``union >= a1 + a2 - that`` exceeds it (slightly inflated, so
    rounding never drops a pair whose exact IoU is above the threshold)."""
    wh = torch.minimum(gi[2:4], gj[2:4]) - torch.maximum(gi[:2], gj[:2])
    ai, aj = gi[4], gj[4]
    inter = torch.minimum(wh.clamp_min(0).prod(0), torch.minimum(ai, aj))
    # inter / (ai + aj - inter) > t, without a division
    t = (iou_threshold - 1e-6) / (1 + 1e-4)
    return (inter > 0) & (inter * (1 + t) > t * (ai + aj))


def _suppression_edges(tab: Tensor, h: Tensor, iou_threshold: float, labels: Tensor | None) -> tuple[Tensor, Tensor]:
    """Pairs ``(i, j)``, ``i < j`` (columns of the box table ``(17, N)``; ``h (5, N)``: enclosing boxes and
    areas), with IoU above the threshold."""
    i, j = _candidates(h, labels)
    ok = _may_exceed(h.index_select(1, i), h.index_select(1, j), iou_threshold)
    i, j = i[ok], j[ok]
    iou = _pair_values(tab, i, j, "iou")
    sup = iou > iou_threshold
    return i[sup], j[sup]


def _screen(h: Tensor, labels: Tensor | None, rest: Tensor, rows: int,
            iou_threshold: float) -> tuple[Tensor, Tensor]:
    """Pairs (block box ``rest[r]``, later open box ``rest[c]``, ``r < c``, same label) that pass
    :func:`_may_exceed`, as positions ``(r, c)`` in ``rest``.

    Args:
        h: enclosing boxes and areas ``(5, N)`` in score order.
        labels: ``(N,)`` or None.
        rest: open boxes ``(M,)``, increasing; the block is ``rest[:rows]``.
    """
    hr = h.index_select(1, rest)
    hb = hr[:, :rows, None]
    hc = hr[:, None]
    mask = (hc[0] < hb[2]) & (hc[2] > hb[0]) & (hc[1] < hb[3]) & (hc[3] > hb[1])
    mask = torch.triu(mask, diagonal=1)
    if labels is not None:
        lab = labels.index_select(0, rest)
        mask &= lab[:rows, None] == lab[None, :]
    r, c = mask.nonzero(as_tuple=True)
    ok = _may_exceed(hr.index_select(1, r), hr.index_select(1, c), iou_threshold)
    return torch.masked_select(r, ok), torch.masked_select(c, ok)


def _row_edges(tab: Tensor, rest: Tensor, r: Tensor, c: Tensor, iou_threshold: float) -> tuple[Tensor, Tensor]:
    """The screened pairs ``(r, c)`` (positions in ``rest``) whose IoU is above the threshold."""
    sup = _pair_values(tab, rest.index_select(0, r), rest.index_select(0, c), "iou") > iou_threshold
    return torch.masked_select(r, sup), torch.masked_select(c, sup)


def _greedy_nms(tab: Tensor, labels: Tensor | None, iou_threshold: float) -> Tensor:
    """Greedy NMS of boxes already in score order -> kept mask ``(N,)``.

    Works in blocks of open (not yet suppressed) boxes, in order: the IoUs of a block's boxes with every later
    open box give the greedy decision inside the block, then the block's kept boxes suppress later boxes. On a
    dense layout (many candidates per object) a kept box suppresses most of the others, so only a few rows of
    the pair graph are ever computed. When the measured statistics say the remaining suppression graph is
    cheaper to build than the remaining rounds (sparse layouts, where most boxes are kept), the rest is resolved
    on that graph at once. Both routes give exactly the greedy result.
    """
    n = tab.shape[1]
    dev = tab.device
    h = torch.cat([_hbb(tab), tab[_AREA:_AREA + 1]])  # enclosing boxes and areas
    kept = torch.zeros(n, dtype=torch.bool, device=dev)
    open_ = torch.ones(n, dtype=torch.bool, device=dev)
    start, rows = 0, _NMS_FIRST_ROWS
    reached = kept_count = later = survived = 0
    while start < n:
        rest = torch.nonzero(open_[start:]).squeeze(1) + start
        m = rest.shape[0]
        if m == 0:
            break
        rows = min(rows, m)
        if m * m <= _NMS_SMALL:  # few open boxes: screen them all, and take them in one block if that is cheap
            r, c = _screen(h, labels, rest, m, iou_threshold)
            if r.shape[0] <= _NMS_ROUND_COST:
                rows = m
            else:
                first = r < rows
                r, c = r[first], c[first]
        else:
            r, c = _screen(h, labels, rest, rows, iou_threshold)
        cand = r.shape[0]
        r, c = _row_edges(tab, rest, r, c, iou_threshold)
        inside = c < rows
        keep_blk = _greedy(rows, torch.masked_select(r, inside), torch.masked_select(c, inside), dev)
        blk = rest[:rows]
        kept.index_copy_(0, blk, keep_blk)
        hit = torch.masked_select(c, keep_blk.index_select(0, r) & ~inside)
        open_.index_fill_(0, rest.index_select(0, hit), False)
        if rows == m:
            break
        start = int(blk[-1]) + 1
        left = int(open_[start:].sum())
        if left == 0:
            break
        # Statistics so far: boxes reached (open when their block came) and kept, the share of later open boxes
        # that survived the kept ones (-> suppression rate per kept box), the share of pairs needing an exact IoU.
        k = int(keep_blk.sum())
        reached, kept_count, later, survived = reached + rows, kept_count + k, later + m - rows, survived + left
        keep_rate = kept_count / reached
        per_kept = 1 - (survived / later) ** (1 / kept_count)
        share = cand / max(1, rows * (m - 1))
        # boxes still to be reached: each reached box resolves itself, each kept one suppresses per_kept of the rest
        rate = keep_rate * per_kept
        to_reach = min(left, math.log1p(rate * left) / rate if rate > 0 else left)
        # rows per round: enough exact pairs to amortise the fixed cost of a round
        rows = int(min(max(_NMS_ROUND_COST / max(1.0, share * left), _NMS_FIRST_ROWS), _NMS_MAX_ROWS))
        greedy_cost = to_reach * (share * left / 2 + _NMS_SCREEN_COST * left + _NMS_ROUND_COST / rows)
        graph_cost = _NMS_GRAPH_COST + share * left * left / 2
        if graph_cost < greedy_cost:
            rest = torch.nonzero(open_[start:]).squeeze(1) + start
            src, dst = _suppression_edges(tab.index_select(1, rest), h.index_select(1, rest), iou_threshold,
                                          labels.index_select(0, rest) if labels is not None else None)
            kept.index_copy_(0, rest, _greedy(rest.shape[0], src, dst, dev))
            break
    return kept


def _greedy(n: int, src: Tensor, dst: Tensor, device: torch.device) -> Tensor:
    """Greedy selection in index order on a suppression graph (edges ``src < dst``) -> kept mask ``(n,)``.

    Resolved in rounds: a box with a kept predecessor is suppressed; a box whose predecessors are all
    suppressed is kept. The first unresolved box always resolves, so this terminates; on typical detections it
    takes a handful of rounds. State per box: 2 kept, 1 open, 0 suppressed, so the highest state among a box's
    predecessors (one scatter) decides it: 2 -> suppressed, 1 -> still open, 0 or none -> kept.
    """
    state = torch.ones(n, dtype=torch.int32, device=device)  # int32: scatter "amax" on every device
    if src.numel() == 0:
        return state.bool()
    while True:
        best = torch.zeros_like(state).scatter_reduce_(0, dst, state.index_select(0, src), "amax")
        state = torch.where(state == 1, 2 - best, state)
        if not bool((state == 1).any()):
            return state == 2


def _nms(boxes: Tensor, scores: Tensor, iou_threshold: float, labels: Tensor | None) -> Tensor:
    boxes = _check_boxes(boxes)
    if scores.shape != (boxes.shape[0],):
        raise ValueError(f"scores must have shape ({boxes.shape[0]},), got {tuple(scores.shape)}")
    n = boxes.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores.detach(), descending=True, stable=True).indices
    b = boxes.detach()[order]
    if b.dtype not in (torch.float32, torch.float64):
        b = b.float()
    lab = labels[order] if labels is not None else None
    if iou_threshold < 0:  # every pair (of a class) has IoU > threshold: keep the best box of each class
        if lab is None:
            return order[:1]
        first = torch.ones(n, dtype=torch.bool, device=b.device)
        srt = torch.sort(lab, stable=True)
        same = srt.values[1:] == srt.values[:-1]
        first[srt.indices[1:][same]] = False
        return order[first]
    with _no_autocast(b.device):
        return order[_greedy_nms(_box_table(b), lab, iou_threshold)]


def nms_rotated(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression of oriented boxes.

    A box is suppressed when its IoU with a kept box of higher score is ``> iou_threshold``; equal scores are
    ranked by index (lower first).

    Args:
        boxes: ``(N, 5)`` as ``(cx, cy, w, h, theta)``.
        scores: ``(N,)``.
        iou_threshold: IoU above which the lower-ranked box is suppressed.

    Returns:
        Kept indices ``(K,)`` (long), by decreasing score.
    """
    return _nms(boxes, scores, iou_threshold, None)


def batched_nms_rotated(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """Class-aware :func:`nms_rotated`: boxes suppress only boxes with the same label.

    Args:
        boxes: ``(N, 5)``; scores: ``(N,)``; labels: ``(N,)`` integer classes; iou_threshold: as in nms_rotated.

    Returns:
        Kept indices ``(K,)`` (long), by decreasing score.
    """
    if labels.shape != scores.shape:
        raise ValueError(f"labels must have shape {tuple(scores.shape)}, got {tuple(labels.shape)}")
    return _nms(boxes, scores, iou_threshold, labels)


# ---------------------------------------------------------------------------------------------------- points
def _frame(points: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Coordinates of points ``(..., 2)`` along the width and height axes of boxes ``(..., 5)`` (broadcast),
    from the box centre."""
    cx, cy, _, _, t = boxes.unbind(-1)
    c, s = torch.cos(t), torch.sin(t)
    dx, dy = points[..., 0] - cx, points[..., 1] - cy
    return dx * c + dy * s, dy * c - dx * s


def _local(points: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Coordinates ``(P, N)`` of each point along each box's width and height axes, from its centre."""
    if points.ndim != 2 or points.shape[-1] != 2:
        raise ValueError(f"points must have shape (P, 2), got {tuple(points.shape)}")
    return _frame(points[:, None], _check_boxes(boxes)[None])


def points_in_obb(points: Tensor, boxes: Tensor, aligned: bool = False) -> Tensor:
    """Whether each point lies in each oriented box (boundary included).

    Args:
        points: ``(P, 2)`` as ``(x, y)``; with ``aligned``, ``(..., 2)``.
        boxes: ``(N, 5)`` as ``(cx, cy, w, h, theta)``; with ``aligned``, ``(..., 5)`` broadcastable with the
            points.
        aligned: test point ``i`` against box ``i`` only (broadcast) instead of every pair.

    Returns:
        ``(P, N)`` bool, or the broadcast shape ``(...)`` with ``aligned``.
    """
    if aligned:
        if points.shape[-1] != 2 or boxes.shape[-1] != 5:
            raise ValueError(f"points (..., 2) and boxes (..., 5) expected, got {tuple(points.shape)} and "
                             f"{tuple(boxes.shape)}")
        u, v = _frame(points, boxes)
    else:
        u, v = _local(points, boxes)
        boxes = boxes[None]
    return (u.abs() <= 0.5 * boxes[..., 2]) & (v.abs() <= 0.5 * boxes[..., 3])


def point_to_obb_sides(points: Tensor, boxes: Tensor) -> Tensor:
    """Distances from points to the four sides of oriented boxes, in each box's own frame.

    Args:
        points: ``(P, 2)`` as ``(x, y)``.
        boxes: ``(N, 5)`` as ``(cx, cy, w, h, theta)``.

    Returns:
        ``(P, N, 4)`` as ``(left, top, right, bottom)``: ``w/2 + u, h/2 + v, w/2 - u, h/2 - v`` with ``(u, v)``
        the point along the box's width and height axes; all positive exactly when the point is inside.
    """
    u, v = _local(points, boxes)
    hw, hh = 0.5 * boxes[None, :, 2], 0.5 * boxes[None, :, 3]
    return torch.stack([hw + u, hh + v, hw - u, hh - v], dim=-1)
