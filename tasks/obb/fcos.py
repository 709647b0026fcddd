"""``RotatedFCOS``: a single-stage anchor-free rotated detector (plain ``nn.Module``, no Lightning).

Per FPN location the head predicts class logits, a centre-ness logit, the distances ``(l, t, r, b)`` from the
location to the four sides of the box *in the box's own frame*, and the box angle through an angle coder
(:mod:`visionkit.tasks.obb.coders`). Boxes are ``(cx, cy, w, h, theta)``, pixels, radians, clockwise-positive in
image coordinates (y down), le90.

Box frame: the unit vectors ``u = (cos θ, sin θ)`` (along ``w``) and ``v = (−sin θ, cos θ)`` (along ``h``). A
location ``p`` has local coordinates ``x = (p − c)·u``, ``y = (p − c)·v`` and side distances
``l = w/2 + x``, ``t = h/2 + y``, ``r = w/2 − x``, ``b = h/2 − y``; decoding inverts this:
``w = l + r``, ``h = t + b``, ``c = p + (r − l)/2 · u + (b − t)/2 · v``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from visionkit.backbones import FPN, InputNormalization, build_backbone
from visionkit.ops.rotated_boxes import batched_nms_rotated, regularize_obb
from visionkit.tasks.obb.coders import AngleCoder

__all__ = ["RotatedFCOS", "RotatedFCOSConfig", "RotatedFCOSHead", "centerness_target", "decode_sides", "encode_sides"]



# ---------------------------------------------------------------------------------------------- geometry
def encode_sides(points: Tensor, boxes: Tensor) -> Tensor:
    """Distances from points to the four sides of rotated boxes, in each box's frame.

    Args:
        points: ``(P, 2)`` locations ``(x, y)``, pixels.
        boxes: ``(N, 5)`` boxes ``(cx, cy, w, h, theta)``.

    Returns:
        ``(P, N, 4)`` distances ``(left, top, right, bottom)``; all positive iff the point is inside the box.
    """
    d = points[:, None, :] - boxes[None, :, :2]  # (P, N, 2)
    cos, sin = torch.cos(boxes[:, 4]), torch.sin(boxes[:, 4])  # (N,)
    x = d[..., 0] * cos + d[..., 1] * sin  # (P, N) along w
    y = -d[..., 0] * sin + d[..., 1] * cos  # (P, N) along h
    hw, hh = boxes[:, 2] / 2, boxes[:, 3] / 2
    return torch.stack([hw + x, hh + y, hw - x, hh - y], dim=-1)


def decode_sides(points: Tensor, sides: Tensor, theta: Tensor) -> Tensor:
    """Boxes from locations, side distances in the box frame and angles (inverse of :func:`encode_sides`).

    Args:
        points: ``(..., 2)`` locations.
        sides: ``(..., 4)`` distances ``(l, t, r, b)``.
        theta: ``(...)`` angles, radians.

    Returns:
        ``(..., 5)`` boxes ``(cx, cy, w, h, theta)`` (not regularised: ``w < h`` is possible).
    """
    l, t, r, b = sides.unbind(-1)
    cos, sin = torch.cos(theta), torch.sin(theta)
    ox, oy = (r - l) / 2, (b - t) / 2
    cx = points[..., 0] + ox * cos - oy * sin
    cy = points[..., 1] + ox * sin + oy * cos
    return torch.stack([cx, cy, l + r, t + b, theta], dim=-1)


def centerness_target(sides: Tensor) -> Tensor:
    """FCOS centre-ness ``sqrt(min(l,r)/max(l,r) · min(t,b)/max(t,b))`` of ``(..., 4)`` side distances."""
    l, t, r, b = sides.clamp(min=0).unbind(-1)
    lr = torch.minimum(l, r) / torch.maximum(l, r).clamp(min=1e-6)
    tb = torch.minimum(t, b) / torch.maximum(t, b).clamp(min=1e-6)
    return torch.sqrt(lr * tb)


# ---------------------------------------------------------------------------------------------- modules
def _gn(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels)


class RotatedFCOSHead(nn.Module):
    """Shared head over the FPN levels: a classification tower and a regression tower (conv-GN-ReLU).

    The class logits come from the classification tower; centre-ness, side distances and the angle encoding
    from the regression tower. Side distances are ``exp(s_l · x) · stride`` (``dist_act='exp'``) or
    ``relu(s_l · x) · stride`` (``'relu'``) with a learnt scale ``s_l`` per level.

    Args:
        channels: input (FPN) channels, also the tower width.
        num_classes: foreground classes.
        angle_size: channels of the angle encoding.
        num_levels: FPN levels (for the per-level scales).
        num_convs: conv-GN-ReLU layers per tower.
        dist_act: ``"exp"`` or ``"relu"``.
        prior_prob: initial foreground probability of the class logits.
        angle_bias: initial bias of the angle output (None: default init).
    """

    def __init__(self, channels: int, num_classes: int, angle_size: int, num_levels: int, num_convs: int = 2,
                 dist_act: Literal["exp", "relu"] = "exp", prior_prob: float = 0.01,
                 angle_bias: float | None = None) -> None:
        super().__init__()
        if dist_act not in ("exp", "relu"):
            raise ValueError(f"model.init_args.fcos.dist_act: expected 'exp' or 'relu', got {dist_act!r}")
        self.dist_act = dist_act

        def tower() -> nn.Sequential:
            layers: list[nn.Module] = []
            for _ in range(num_convs):
                layers += [nn.Conv2d(channels, channels, 3, padding=1, bias=False), _gn(channels), nn.ReLU()]
            return nn.Sequential(*layers)

        self.cls_tower, self.reg_tower = tower(), tower()
        self.cls_logits = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.centerness = nn.Conv2d(channels, 1, 3, padding=1)
        self.dist = nn.Conv2d(channels, 4, 3, padding=1)
        self.angle = nn.Conv2d(channels, angle_size, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(num_levels))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_prob) / prior_prob))
        if angle_bias is not None:
            nn.init.constant_(self.angle.bias, angle_bias)

    def forward(self, feats: Sequence[Tensor], strides: Sequence[int]) -> dict[str, Tensor]:
        """Run the head on every level and flatten the locations, level after level.

        Returns:
            ``cls (B, P, C)`` logits, ``ctr (B, P)`` logits, ``dist (B, P, 4)`` pixels, ``angle (B, P, D)``.
        """
        out: dict[str, list[Tensor]] = {"cls": [], "ctr": [], "dist": [], "angle": []}
        for i, (f, s) in enumerate(zip(feats, strides)):
            c, r = self.cls_tower(f), self.reg_tower(f)
            d = self.scales[i] * self.dist(r)
            d = torch.exp(d.clamp(max=10.0)) if self.dist_act == "exp" else F.relu(d)
            out["cls"].append(self.cls_logits(c).flatten(2).transpose(1, 2))
            out["ctr"].append(self.centerness(r).flatten(1))
            out["dist"].append((d * s).flatten(2).transpose(1, 2))
            out["angle"].append(self.angle(r).flatten(2).transpose(1, 2))
        return {k: torch.cat(v, dim=1) for k, v in out.items()}


@dataclass(frozen=True)
class RotatedFCOSConfig:
    """Options of the :class:`RotatedFCOS` network (``model.init_args.fcos`` of
    :class:`~visionkit.tasks.obb.detection.RotatedDetectionTask`).

    The class count and the angle coder are not among them: the task passes them (``num_classes`` comes from the
    datamodule, the coder from ``angle_coder`` / ``coder_kwargs``).

    Attributes:
        backbone: backbone registry or timm name (``simple_cnn`` on CPU, e.g. ``resnet50`` on GPU).
        backbone_kwargs: arguments of the backbone factory (e.g. ``widths``, ``out_indices``, ``pretrained``).
        fpn_channels: FPN and head width.
        num_extra_levels: extra stride-2 FPN levels above the backbone's coarsest.
        head_convs: conv-GN-ReLU layers per head tower.
        regress_ranges: per FPN level ``[lo, hi]`` of the largest side distance of an assigned box, pixels (``hi < 0``:
            infinity); None: ``[8 s_{l-1}, 8 s_l]`` from the strides (FCOS's rule).
        center_sampling: only locations within ``center_radius`` strides of the box centre (in the box frame) are
            positives.
        center_radius: centre-sampling radius, in strides.
        dist_act: side-distance activation.
        normalize: standardise the [0, 1] image with the backbone's mean/std (timm: its pretrained config; registered
            backbones: ImageNet's).
        score_thr: minimum class probability of a detection.
        nms_pre: candidates kept per level (top-k) before NMS.
        nms_thr: rotated IoU above which a lower-scored box of the same class is suppressed.
        max_det: detections per image.
        multi_label: A location may give a detection for every class above ``score_thr`` (FCOS); False keeps only its
            best class.
        class_agnostic_nms: boxes of different classes suppress each other too.
    """

    backbone: str = "simple_cnn"
    backbone_kwargs: dict[str, Any] | None = None
    fpn_channels: int = 64
    num_extra_levels: int = 0
    head_convs: int = 2
    regress_ranges: tuple[tuple[float, float], ...] | None = None
    center_sampling: bool = True
    center_radius: float = 1.5
    dist_act: Literal["exp", "relu"] = "exp"
    normalize: bool = True
    score_thr: float = 0.05
    nms_pre: int = 1000
    nms_thr: float = 0.1
    max_det: int = 100
    multi_label: bool = True
    class_agnostic_nms: bool = False

    def __post_init__(self) -> None:
        if self.regress_ranges is not None:
            object.__setattr__(self, "regress_ranges", tuple(tuple(r) for r in self.regress_ranges))


class RotatedFCOS(nn.Module):
    """Backbone + FPN + shared rotated FCOS head, with target assignment and inference.

    Args:
        num_classes: foreground classes.
        coder: the angle coder.
        config: the network's options (None: the defaults), see :class:`RotatedFCOSConfig`.
    """

    def __init__(self, num_classes: int, coder: AngleCoder, config: RotatedFCOSConfig | None = None) -> None:
        super().__init__()
        c = self.config = config if config is not None else RotatedFCOSConfig()
        self.num_classes = num_classes
        self.coder = coder
        self.backbone = build_backbone(c.backbone, **(c.backbone_kwargs or {}))
        in_ch, strides = list(self.backbone.out_channels), list(self.backbone.strides)
        self.strides = strides + [strides[-1] * 2 ** (k + 1) for k in range(c.num_extra_levels)]
        self.fpn = FPN(in_ch, c.fpn_channels, c.num_extra_levels)
        self.head = RotatedFCOSHead(c.fpn_channels, num_classes, coder.encode_size, len(self.strides), c.head_convs,
                                    c.dist_act, angle_bias=coder.bias_init)
        regress_ranges = c.regress_ranges
        if regress_ranges is None:
            edges = [0.0] + [8.0 * s for s in self.strides[:-1]] + [math.inf]
            regress_ranges = [(edges[i], edges[i + 1]) for i in range(len(self.strides))]
        if len(regress_ranges) != len(self.strides):
            raise ValueError(f"model.init_args.fcos.regress_ranges: expected {len(self.strides)} [lo, hi] pairs (one "
                             f"per FPN level, strides {self.strides}), got {len(regress_ranges)}")
        self.regress_ranges = [(float(lo), math.inf if hi < 0 else float(hi)) for lo, hi in regress_ranges]
        self.center_sampling, self.center_radius = c.center_sampling, c.center_radius
        self.score_thr, self.nms_pre, self.nms_thr, self.max_det = c.score_thr, c.nms_pre, c.nms_thr, c.max_det
        self.multi_label, self.class_agnostic_nms = c.multi_label, c.class_agnostic_nms
        self.input_norm = InputNormalization.from_backbone(self.backbone, enabled=c.normalize)

    # ------------------------------------------------------------------------------------------ forward
    def forward(self, images: Tensor) -> dict[str, Any]:
        """Raw head outputs for a batch.

        Args:
            images: ``(B, 3, H, W)`` in [0, 1].

        Returns:
            ``cls (B, P, C)``, ``ctr (B, P)``, ``dist (B, P, 4)``, ``angle (B, P, D)`` (see the head),
            ``points (P, 2)`` location centres in pixels, ``strides (P,)``, ``levels (P,)`` and ``sizes``
            (the ``(h, w)`` of every level).
        """
        feats = self.fpn(self.backbone(self.input_norm(images)))
        if len(feats) != len(self.strides):
            raise RuntimeError(f"backbone returned {len(feats)} levels, expected {len(self.strides)}")
        out = self.head(feats, self.strides)
        pts, strides, levels = self.locations([f.shape[-2:] for f in feats], images.device, images.dtype)
        out.update(points=pts, strides=strides, levels=levels, sizes=[tuple(f.shape[-2:]) for f in feats])
        return out

    def locations(self, sizes: Sequence[Sequence[int]], device: torch.device | None = None,
                  dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor, Tensor]:
        """Centres ``((i + 0.5) s, (j + 0.5) s)`` of the cells of every level, flattened row-major, level by level.

        Returns:
            ``points (P, 2)`` as ``(x, y)``, ``strides (P,)`` and ``levels (P,)`` long.
        """
        pts, strides, levels = [], [], []
        for lvl, ((h, w), s) in enumerate(zip(sizes, self.strides)):
            ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) * s
            xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) * s
            yy, xx = torch.meshgrid(ys, xs, indexing="ij")
            pts.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], -1))
            strides.append(torch.full((h * w,), float(s), device=device, dtype=dtype))
            levels.append(torch.full((h * w,), lvl, device=device, dtype=torch.long))
        return torch.cat(pts), torch.cat(strides), torch.cat(levels)

    # ------------------------------------------------------------------------------------------ targets
    @torch.no_grad()
    def assign(self, points: Tensor, strides: Tensor, levels: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
        """Assign the locations of one image to its boxes.

        A location is a positive of box ``n`` if it lies inside the rotated box, within
        ``center_radius · stride`` of its centre along both box axes (with centre sampling), and the box's largest
        side distance from the location falls in the level's regression range. A location claimed by several
        boxes goes to the smallest box (area). A box that gets no location this way falls back to dropping the
        centre-sampling condition, then to dropping the scale condition (any location inside it), so every box
        that contains a location centre is learnt.

        Args:
            points: ``(P, 2)``, strides: ``(P,)``, levels: ``(P,)`` from :meth:`locations`.
            boxes: ``(N, 5)`` le90 boxes.

        Returns:
            ``gt_index (P,)`` long, index of the assigned box or -1 for background, and ``sides (P, 4)`` the
            target side distances (zeros for background).
        """
        P, N = points.shape[0], boxes.shape[0]
        if N == 0:
            return torch.full((P,), -1, dtype=torch.long, device=points.device), points.new_zeros(P, 4)
        sides = encode_sides(points, boxes)  # (P, N, 4)
        inside = sides.min(-1).values > 0  # (P, N)
        ranges = torch.tensor(self.regress_ranges, dtype=points.dtype, device=points.device)[levels]  # (P, 2)
        max_side = sides.max(-1).values  # (P, N)
        in_range = (max_side >= ranges[:, :1]) & (max_side <= ranges[:, 1:])
        pos = inside & in_range
        if self.center_sampling:
            # offsets from the centre along the box axes: x = l - w/2, y = t - h/2
            off_x = (sides[..., 0] - boxes[None, :, 2] / 2).abs()
            off_y = (sides[..., 1] - boxes[None, :, 3] / 2).abs()
            rad = self.center_radius * strides[:, None]
            central = pos & (off_x < rad) & (off_y < rad)
            pos = torch.where(central.any(0, keepdim=True), central, pos)
        pos = torch.where(pos.any(0, keepdim=True), pos, inside)  # (P, N)
        area = (boxes[:, 2] * boxes[:, 3])[None].expand(P, N)
        area = torch.where(pos, area, torch.full_like(area, math.inf))
        best_area, gt_index = area.min(dim=1)  # (P,)
        fg = torch.isfinite(best_area)
        gt_index = torch.where(fg, gt_index, torch.full_like(gt_index, -1))
        target_sides = sides[torch.arange(P, device=points.device), gt_index.clamp(min=0)]  # (P, 4)
        target_sides = torch.where(fg[:, None], target_sides, torch.zeros_like(target_sides))
        return gt_index, target_sides

    @torch.no_grad()
    def get_targets(self, out: dict[str, Any], boxes: Sequence[Tensor],
                    labels: Sequence[Tensor]) -> dict[str, Tensor]:
        """Targets of a batch.

        Returns:
            ``labels (B, P)`` long (``num_classes`` = background), ``boxes (B, P, 5)``, ``sides (B, P, 4)``.
        """
        pts, strides, levels = out["points"], out["strides"], out["levels"]
        t_labels, t_boxes, t_sides = [], [], []
        for b, lab in zip(boxes, labels):
            b = b.to(pts)
            lab = lab.to(pts.device).long()
            if lab.numel() and (lab.min() < 0 or lab.max() >= self.num_classes):
                raise ValueError(f"labels must lie in [0, {self.num_classes}), got {lab.unique().tolist()} "
                                 "(check model.init_args.num_classes)")
            idx, sides = self.assign(pts, strides, levels, b)
            fg = idx >= 0
            safe = idx.clamp(min=0)
            t_labels.append(torch.where(fg, lab[safe] if lab.numel() else idx, torch.full_like(idx, self.num_classes)))
            t_boxes.append(b[safe] * fg[:, None] if b.numel() else pts.new_zeros(pts.shape[0], 5))
            t_sides.append(sides)
        return {"labels": torch.stack(t_labels), "boxes": torch.stack(t_boxes), "sides": torch.stack(t_sides)}

    # ------------------------------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(self, images: Tensor, out: dict[str, Any] | None = None) -> list[dict[str, Tensor]]:
        """Detections per image: ``boxes (K, 5)`` le90, ``scores (K,)``, ``labels (K,)``.

        Score of a candidate: ``sigmoid(class) · sigmoid(centre-ness)``; candidates need a class probability above
        ``score_thr``; the best ``nms_pre`` per level are decoded, then rotated NMS (class-aware unless
        ``class_agnostic_nms``) and ``max_det``.
        """
        if out is None:
            out = self(images)
        cls = torch.sigmoid(out["cls"])  # (B, P, C)
        if not self.multi_label:  # keep each location's best class only
            cls = cls * F.one_hot(cls.argmax(-1), cls.shape[-1]).to(cls.dtype)
        ctr = torch.sigmoid(out["ctr"])  # (B, P)
        theta = self.coder.decode(out["angle"])  # (B, P)
        boxes = decode_sides(out["points"][None], out["dist"], theta)  # (B, P, 5)
        C = self.num_classes
        n_per_level = [h * w for h, w in out["sizes"]]
        results = []
        for i in range(cls.shape[0]):
            cand_idx, cand_scores, cand_labels = [], [], []
            start = 0
            for n in n_per_level:
                prob = cls[i, start:start + n].reshape(-1)  # (n*C,)
                keep = torch.nonzero(prob > self.score_thr).squeeze(1)
                if keep.numel() > self.nms_pre:
                    keep = keep[prob[keep].topk(self.nms_pre).indices]
                loc = keep // C + start
                cand_idx.append(loc)
                cand_labels.append(keep % C)
                cand_scores.append(prob[keep] * ctr[i, loc])
                start += n
            loc, scores, labels = torch.cat(cand_idx), torch.cat(cand_scores), torch.cat(cand_labels)
            bx = regularize_obb(boxes[i, loc], "le90")
            if loc.numel():
                groups = torch.zeros_like(labels) if self.class_agnostic_nms else labels
                keep = batched_nms_rotated(bx, scores, groups, self.nms_thr)
                keep = keep[scores[keep].argsort(descending=True)][: self.max_det]
                bx, scores, labels = bx[keep], scores[keep], labels[keep]
            results.append({"boxes": bx, "scores": scores, "labels": labels})
        return results
