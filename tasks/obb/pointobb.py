"""PointOBB: oriented boxes learnt from one point per object (multiple-instance learning + self-supervised angles).

The model (:class:`PointOBB`, a plain ``nn.Module``) turns point annotations into pseudo oriented boxes; the
task (:class:`PointOBBTask`) trains it on point labels, measures the pseudo boxes against the true boxes and,
in ``predict``, hands them to a writer of DOTA label files, on which a fully supervised detector is trained.

Method (boxes ``(cx, cy, w, h, theta)``, pixels, radians, clockwise-positive in the image, le90):

* **Backbone + FPN**; rotated RoI features are bilinear samples of an ``S x S`` grid laid in each proposal's
  own frame, taken from the FPN level that matches the proposal's scale ``sqrt(w h)``: level
  ``clamp(floor(log2(scale / finest_scale)) + 1, 0, L - 1)`` (scales below ``finest_scale`` -> level 0, each
  doubling one level up).
* **Stage 0 (bag around the point)**: for each point, ``len(bag_scales) x len(bag_ratios)`` (10 x 7) proposals
  centred on the point with area ``s^2`` and ``w/h = r``. A MIL head gives class logits (softmax over classes) and
  instance logits (softmax over the bag, per class); the bag score is ``sum_k cls_k * ins_k`` and is trained with
  binary cross-entropy against the point's one-hot class. The stage-0 box is the score-weighted mean (centre,
  sides, angle through the doubled-angle vector) of the ``topk`` (7) proposals with the best score of the
  point's class.
* **Stage 1 (refinement)**: proposals jittered around the (detached) stage-0 box: sides times
  ``jitter_scales`` and centre offsets of ``jitter_offsets`` times the jittered sides along the box axes, plus
  ``num_negatives`` random boxes per image whose IoU with every stage-0 box is below ``neg_iou_thr``. The stage-1
  head uses sigmoid class scores; its bag score is trained like stage 0 and the negatives with a focal loss
  towards background. The pseudo box is the stage-1 top-k weighted mean; its score is the stage-1 bag score.
* **Scale-Sensitive Consistency (SSC)**: the image is resized by ``s ~ U(0.5, 1.5)`` and the stage-0 bags are
  scaled with it (proposal ``k`` of the resized bag is proposal ``k`` of the original, times ``s``). For the
  point's class, the class scores and the instance scores of the bag are arranged as ``(scales, ratios)``; a
  *scale group* is the column of one aspect ratio across the scales. The loss is ``1 - cosine similarity``
  between the two views per scale group, averaged, with weights 1.0 (class) and 2.0 (instance).
* **Angle acquisition**: a dense angle branch on every FPN level predicts the angle encoding of the configured
  coder (UCR by default; the decoder must be differentiable). Dense-to-Sparse matching: for each point and each
  level, the encodings of the locations within ``d2s_radius`` (1.5) strides of the point are averaged and
  decoded; a proposal takes the angle of the level that matches its scale. The symmetry loss (smooth-L1,
  beta 0.1, weight 0.5) compares the original view with a view rotated by ``delta = pi U(0.25, 0.75)``
  counter-clockwise on screen (probability 0.95), ``d = (theta_orig - theta_rot) - delta``, or flipped
  top-bottom, ``d = theta_orig + theta_flip``, with ``d`` wrapped modulo pi into ``[-pi/2, pi/2)``, per level and
  object (objects whose point leaves the rotated image are skipped). Classes in ``agnostic_classes``
  (rotation-agnostic, e.g. storage tanks) get no angle loss and horizontal proposals. The coder's constraint
  loss (UCR's unit circle) is applied to the encodings that enter the matching.
* **Progressive switching** (fractions of the optimiser steps): until ``angle_loss_start`` only scale is learnt
  (MIL + SSC) with horizontal proposals; then the rotated/flipped view and the symmetry loss are added; from
  ``angle_proposal_start`` the predicted (detached) angles are written into the proposals.

Options beyond the description (off by default unless stated): ``stage0_sigmoid`` scores stage 0 with sigmoids
that the negatives also train towards background, and ``stage0_background`` adds a background class to the stage-0
softmax (both give stage 0 an objectness; without one, a softmax over few classes lets the bags drift to proposals
that show the whole object with much background around it); negatives cover none of their image's points
(``neg_avoid_points``, on); ``rotate_padding`` fills the rotated view's corners by reflection or compares the
inscribed disc in both views; ``sym_dense_weight`` adds the symmetry relation at every cell of every level;
``angle_head: tensor`` replaces the conv angle branch by the orientation tensor of learnt maps (optionally with the
image as a prior, :mod:`~visionkit.tasks.obb.pointobb_angle`); ``scale_negatives`` adds each stage-0 box shrunk and
grown as negatives; ``exclude_other_points`` leaves proposals that cover another point out of the instance
scores; ``roi_context`` samples the RoI grid over a margin around each proposal; ``pseudo_stage: 0`` reports the
stage-0 box as the pseudo box.

Design choices beyond the description: the bag scores use plain binary cross-entropy; stage 1 jitters with
3 x 3 side factors and 3 x 3 centre offsets (81 proposals per object); negatives are drawn with random centres,
random angles and sides taken from the image's stage-0 boxes times ``U(0.5, 1.5)``; the SSC and the MIL losses
share the stage-0 head; the angle of a pseudo box is the score-weighted doubled-angle mean of its proposals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from torchmetrics import Metric, MetricCollection

from visionkit.backbones import FPN, InputNormalization, build_backbone
from visionkit.ops.rotated_boxes import box_iou_rotated, points_in_obb, regularize_obb
from visionkit.tasks.base import model_config, reject_moved_options
from visionkit.tasks.obb import pointobb_losses as L
from visionkit.tasks.obb import pointobb_views as V
from visionkit.tasks.obb.coders import AngleCoder
from visionkit.tasks.obb.pointobb_angle import ANGLE_HEADS, build_angle_head
from visionkit.tasks.obb.task_base import OBBTask

__all__ = ["MILHead", "MILStage", "PointOBB", "PointOBBConfig", "PointOBBOutputs", "PointOBBTask", "PseudoBoxIoU",
           "rotated_roi_grid", "weighted_box_mean"]

DEFAULT_SCALES = (8.0, 9.8, 11.9, 14.6, 17.8, 21.8, 26.6, 32.5, 39.7, 48.5)
DEFAULT_RATIOS = (1 / 3, 1 / 2, 2 / 3, 1.0, 3 / 2, 2.0, 3.0)


# ---------------------------------------------------------------------------------------------- geometry helpers
def rotated_roi_grid(boxes: Tensor, size: int) -> Tensor:
    """Sampling points of an ``size x size`` grid laid in each box's own frame (cell centres).

    Args:
        boxes: ``(K, 5)`` ``(cx, cy, w, h, theta)``.
        size: grid side ``S``.

    Returns:
        ``(K, S*S, 2)`` pixel coordinates ``(x, y)``, row-major along the box's h-axis then w-axis.
    """
    t = (torch.arange(size, dtype=boxes.dtype, device=boxes.device) + 0.5) / size - 0.5  # (S,)
    gv, gu = torch.meshgrid(t, t, indexing="ij")
    gu, gv = gu.reshape(1, -1), gv.reshape(1, -1)  # (1, S*S)
    cx, cy, w, h, th = (boxes[:, i:i + 1] for i in range(5))
    c, s = torch.cos(th), torch.sin(th)
    u, v = gu * w, gv * h  # (K, S*S)
    return torch.stack([cx + u * c - v * s, cy + u * s + v * c], -1)


def weighted_box_mean(boxes: Tensor, weights: Tensor) -> Tensor:
    """Weighted mean of bags of boxes: centre and sides linearly, the angle through ``(cos 2θ, sin 2θ)``.

    Args:
        boxes: ``(N, K, 5)``.
        weights: ``(N, K)`` non-negative (normalised here; all-zero rows give the plain mean).

    Returns:
        ``(N, 5)`` boxes.
    """
    w = weights.clamp_min(0)
    tot = w.sum(1, keepdim=True)
    w = torch.where(tot > 0, w / tot.clamp_min(1e-12), torch.full_like(w, 1.0 / max(w.shape[1], 1)))
    lin = (boxes[..., :4] * w[..., None]).sum(1)
    c = (torch.cos(2 * boxes[..., 4]) * w).sum(1)
    s = (torch.sin(2 * boxes[..., 4]) * w).sum(1)
    return torch.cat([lin, (torch.atan2(s, c) / 2)[:, None]], 1)


# ---------------------------------------------------------------------------------------------- modules
class MILHead(nn.Module):
    """Two shared fully connected layers, then class and instance logits per proposal.

    Args:
        in_dim: flattened RoI feature size ``C * S * S``.
        hidden: width of the shared layers.
        num_classes: foreground classes.
        cls_bias: initial bias of the class logits.
        background: add a background logit (last column of the class logits) for a softmax over classes +
            background.
    """

    def __init__(self, in_dim: int, hidden: int, num_classes: int, cls_bias: float = 0.0,
                 background: bool = False) -> None:
        super().__init__()
        self.background = background
        self.fc = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.cls = nn.Linear(hidden, num_classes + int(background))
        self.ins = nn.Linear(hidden, num_classes)
        for m in (self.cls, self.ins):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)
        nn.init.constant_(self.cls.bias, cls_bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(K, in_dim)`` -> class logits ``(K, C)`` (``(K, C + 1)`` with background), instance logits ``(K, C)``."""
        h = self.fc(x)
        return self.cls(h), self.ins(h)


@dataclass(frozen=True)
class PointOBBConfig:
    """Options of the :class:`PointOBB` network (``model.init_args.pointobb`` of :class:`PointOBBTask`).

    The class count and the angle coder are not among them: the task passes them (``num_classes`` comes from the
    datamodule, the coder from ``angle_coder`` / ``coder_kwargs``). Sequences are stored as tuples.

    Attributes:
        backbone: backbone registry or timm name.
        backbone_kwargs: arguments of the backbone factory (e.g. ``widths``, ``out_indices``, ``pretrained``).
        fpn_channels: FPN width.
        bag_scales: stage-0 proposal scales ``sqrt(w h)``, pixels.
        bag_ratios: stage-0 aspect ratios ``w / h``.
        topk: proposals averaged into a pseudo box.
        roi_size: side ``S`` of the rotated RoI sampling grid.
        roi_context: the RoI grid covers the box's sides times this factor (>= 1: a margin of context around it).
        head_dim: width of the MIL heads.
        finest_scale: proposals with ``sqrt(w h)`` below this (pixels) use the finest FPN level.
        jitter_scales: stage-1 side factors.
        jitter_offsets: stage-1 centre offsets, fractions of the sides.
        num_negatives: random negative proposals per image in stage 1.
        neg_iou_thr: a random negative has IoU below this with every stage-0 box of its image.
        d2s_radius: dense-to-sparse radius, in strides.
        angle_convs: conv-ReLU layers of the angle branch.
        angle_head: ``'conv'`` (the paper's conv branch) or ``'tensor'`` (orientation tensor of learnt maps,
            :mod:`~visionkit.tasks.obb.pointobb_angle`).
        tensor_maps: learnt maps of the tensor head.
        tensor_sigma: window of the tensor head, in cells.
        tensor_image: the image (averaged down to each level) joins the tensor head's learnt maps.
        agnostic_classes: rotation-agnostic classes (horizontal proposals, no angle loss).
        stage0_sigmoid: stage 0 scores classes with sigmoids and also learns background from the negatives (default:
            softmax over classes, as in the paper).
        stage0_background: stage 0 scores with a softmax over the classes and a background class that the negatives
            train (objectness); the bag scores use the class columns.
        exclude_other_points: proposals that cover another annotated point of their image get no instance score.
        pseudo_stage: the stage whose top-k mean (and bag score) is the pseudo box: 1 (the paper's refined box) or 0
            (stage 1 is still trained and shapes the features).
        normalize: standardise [0, 1] images with the backbone's mean/std (timm: its pretrained config; registered
            backbones: ImageNet's).
        roi_chunk: RoIs whose features are computed at once; while training, each chunk's features are recomputed in
            backward instead of kept (:meth:`PointOBB.roi_logits`). 0: all at once, all kept.
        checkpoint_features: while training, keep only the outputs of the backbone stages, the FPN maps and the angle
            maps, and recompute the layers inside them in backward (same results, one more forward pass of those parts;
            BatchNorm running statistics are updated again by the recomputation).
    """

    backbone: str = "simple_cnn"
    backbone_kwargs: dict[str, Any] | None = None
    fpn_channels: int = 64
    bag_scales: tuple[float, ...] = DEFAULT_SCALES
    bag_ratios: tuple[float, ...] = DEFAULT_RATIOS
    topk: int = 7
    roi_size: int = 5
    roi_context: float = 1.0
    head_dim: int = 256
    finest_scale: float = 24.0
    jitter_scales: tuple[float, ...] = (0.8, 1.0, 1.2)
    jitter_offsets: tuple[float, ...] = (-0.1, 0.0, 0.1)
    num_negatives: int = 32
    neg_iou_thr: float = 0.3
    d2s_radius: float = 1.5
    angle_convs: int = 2
    angle_head: Literal["conv", "tensor"] = "conv"
    tensor_maps: int = 8
    tensor_sigma: float = 1.5
    tensor_image: bool = False
    agnostic_classes: tuple[int, ...] = ()
    stage0_sigmoid: bool = False
    stage0_background: bool = False
    exclude_other_points: bool = False
    pseudo_stage: Literal[0, 1] = 1
    normalize: bool = True
    roi_chunk: int = 2048
    checkpoint_features: bool = False

    def __post_init__(self) -> None:
        for name in ("bag_scales", "bag_ratios", "jitter_scales", "jitter_offsets", "agnostic_classes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        key = "model.init_args.pointobb"
        if self.angle_head not in ANGLE_HEADS:
            raise ValueError(f"{key}.angle_head: expected one of {ANGLE_HEADS}, got {self.angle_head!r}")
        if self.roi_context < 1.0:
            raise ValueError(f"{key}.roi_context: expected >= 1, got {self.roi_context}")
        if self.stage0_sigmoid and self.stage0_background:
            raise ValueError(f"{key}.stage0_sigmoid/stage0_background: choose one")
        if self.pseudo_stage not in (0, 1):
            raise ValueError(f"{key}.pseudo_stage: expected 0 or 1, got {self.pseudo_stage}")
        if self.roi_chunk < 0:
            raise ValueError(f"{key}.roi_chunk: expected >= 0 (0: no chunks), got {self.roi_chunk}")


@dataclass
class MILStage:
    """One MIL stage of :meth:`PointOBB.run` for the ``N`` points of a batch (``K`` proposals per bag, ``C``
    classes).

    Attributes:
        bags: ``(N, K, 5)`` proposals.
        cls: ``(N, K, C)`` class probabilities (the class columns with a background class).
        ins: ``(N, K, C)`` instance probabilities (softmax over the bag).
        boxes: ``(N, 5)`` score-weighted mean of the top-k proposals (not regularised).
        scores: ``(N,)`` bag scores of the point's class.
        keep: ``(N, K)`` proposals that enter the instance scores (None: all).
    """

    bags: Tensor
    cls: Tensor
    ins: Tensor
    boxes: Tensor
    scores: Tensor
    keep: Tensor | None


@dataclass
class PointOBBOutputs:
    """What one :meth:`PointOBB.run` gives the task's losses and predictions (``N`` points of ``B`` images,
    image by image, ``L`` FPN levels).

    Attributes:
        boxes: ``(N, 5)`` le90 pseudo boxes (detached).
        scores: ``(N,)`` their scores in [0, 1] (detached).
        labels: ``(N,)`` point classes.
        batch_idx: ``(N,)`` image of each point.
        points: ``(N, 2)`` pixels.
        image_size: ``(H, W)`` of the image batch.
        feats: FPN maps ``(B, C, h_l, w_l)``, finest first.
        angle_maps: dense angle encodings ``(B, D, h_l, w_l)`` per level.
        theta: ``(N, L)`` dense-to-sparse angles of every level.
        constraint: ``(N, L)`` the coder's constraint loss of the encodings that entered ``theta``.
        stage0, stage1: the two MIL stages.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    batch_idx: Tensor
    points: Tensor
    image_size: tuple[int, int]
    feats: list[Tensor]
    angle_maps: list[Tensor]
    theta: Tensor
    constraint: Tensor
    stage0: MILStage
    stage1: MILStage

    def per_image(self, batch_size: int) -> list[dict[str, Tensor]]:
        """``boxes``, ``scores`` and ``labels`` of each of ``batch_size`` images (the point order)."""
        res = []
        for i in range(batch_size):
            m = self.batch_idx == i
            res.append({"boxes": self.boxes[m], "scores": self.scores[m], "labels": self.labels[m]})
        return res


class PointOBB(nn.Module):
    """Backbone + FPN, a two-stage MIL box head and a dense angle branch (see the module docstring).

    Args:
        num_classes: foreground classes.
        coder: the angle coder of the dense branch (differentiable decoder).
        config: the network's options (None: the defaults), see :class:`PointOBBConfig`.
    """

    def __init__(self, num_classes: int, coder: AngleCoder, config: PointOBBConfig | None = None) -> None:
        super().__init__()
        c = self.config = config if config is not None else PointOBBConfig()
        if not coder.differentiable_decode:
            raise ValueError(f"model.init_args.angle_coder: PointOBB's symmetry loss needs a differentiable "
                             f"decoder; {type(coder).__name__} has none (use ucr, psc or plain)")
        self.num_classes, self.coder = num_classes, coder
        self.backbone = build_backbone(c.backbone, **(c.backbone_kwargs or {}))
        self.strides = list(self.backbone.strides)
        self.fpn = FPN(list(self.backbone.out_channels), c.fpn_channels)
        self.roi_size, self.topk, self.finest_scale = c.roi_size, c.topk, float(c.finest_scale)
        self.roi_context = float(c.roi_context)
        in_dim = c.fpn_channels * c.roi_size * c.roi_size
        self.stage0_sigmoid = c.stage0_sigmoid
        self.exclude_other_points = c.exclude_other_points
        self.pseudo_stage = c.pseudo_stage
        self.roi_chunk = int(c.roi_chunk)
        self.checkpoint_features = bool(c.checkpoint_features)
        inner = getattr(self.backbone, "model", None)
        self._stagewise_checkpoints = c.checkpoint_features and hasattr(inner, "set_grad_checkpointing")
        self.head0 = MILHead(in_dim, c.head_dim, num_classes, cls_bias=-math.log(9.0) if c.stage0_sigmoid else 0.0,
                             background=c.stage0_background)
        # stage 1 scores classes with sigmoids: start at a foreground prior of 0.1
        self.head1 = MILHead(in_dim, c.head_dim, num_classes, cls_bias=-math.log(9.0))
        self.angle_head = build_angle_head(c.angle_head, c.fpn_channels, coder, c.angle_convs, c.tensor_maps,
                                           c.tensor_sigma, c.tensor_image)
        scales = torch.tensor([float(s) for s in c.bag_scales])
        ratios = torch.tensor([float(r) for r in c.bag_ratios])
        # (S*R, 2) stage-0 sides (w, h), scale-major: index = scale_index * R + ratio_index
        self.register_buffer("bag_wh", torch.stack([(scales[:, None] * ratios.sqrt()[None]).reshape(-1),
                                                    (scales[:, None] / ratios.sqrt()[None]).reshape(-1)], -1),
                             persistent=False)
        self.num_scales, self.num_ratios = len(c.bag_scales), len(c.bag_ratios)
        js = torch.tensor([float(s) for s in c.jitter_scales])
        jo = torch.tensor([float(o) for o in c.jitter_offsets])
        fw, fh, ox, oy = torch.meshgrid(js, js, jo, jo, indexing="ij")
        self.register_buffer("jitter", torch.stack([fw, fh, ox, oy], -1).reshape(-1, 4), persistent=False)
        self.num_negatives, self.neg_iou_thr = c.num_negatives, c.neg_iou_thr
        self.d2s_radius = c.d2s_radius
        bad = [k for k in c.agnostic_classes if not 0 <= int(k) < num_classes]
        if bad:
            raise ValueError(f"model.init_args.pointobb.agnostic_classes: classes {bad} outside [0, {num_classes})")
        agn = torch.zeros(num_classes, dtype=torch.bool)
        if len(c.agnostic_classes):
            agn[torch.tensor(list(c.agnostic_classes), dtype=torch.long)] = True
        self.register_buffer("agnostic", agn, persistent=False)
        self.input_norm = InputNormalization.from_backbone(self.backbone, enabled=c.normalize)

    # ------------------------------------------------------------------------------------------ features
    def _recompute(self) -> bool:
        return self.checkpoint_features and torch.is_grad_enabled()

    def features(self, images: Tensor) -> list[Tensor]:
        """FPN maps of ``(B, 3, H, W)`` images in [0, 1], finest first."""
        x = self.input_norm(images)
        recompute = self._recompute()
        if self._stagewise_checkpoints:  # timm backbones recompute stage by stage themselves, when asked
            self.backbone.model.set_grad_checkpointing(recompute)
        if not recompute:
            return self.fpn(self.backbone(x))
        if self._stagewise_checkpoints:
            feats = list(self.backbone(x))
        else:
            feats = list(checkpoint(lambda t: tuple(self.backbone(t)), x, use_reentrant=False))
        return list(checkpoint(lambda *fs: tuple(self.fpn(list(fs))), *feats, use_reentrant=False))

    def angle_maps(self, feats: Sequence[Tensor], images: Tensor | None = None) -> list[Tensor]:
        """Dense angle encodings ``(B, D, h_l, w_l)`` per level (``images``: the input, for heads that read it)."""
        if self._recompute():
            return [checkpoint(self.angle_head, f, images, use_reentrant=False) for f in feats]
        return [self.angle_head(f, images) for f in feats]

    def level_of(self, wh: Tensor) -> Tensor:
        """FPN level ``(...)`` long of boxes with sides ``wh (..., 2)`` (see the module docstring)."""
        scale = (wh[..., 0] * wh[..., 1]).clamp_min(1e-6).sqrt()
        lvl = torch.floor(torch.log2(scale / self.finest_scale)) + 1
        return lvl.clamp(0, len(self.strides) - 1).long()

    def roi_features(self, feats: Sequence[Tensor], boxes: Tensor, batch_idx: Tensor) -> Tensor:
        """Rotated RoI features of boxes of several images.

        Args:
            feats: FPN maps ``(B, C, h_l, w_l)``.
            boxes: ``(K, 5)`` in the pixels of the image the maps were computed from.
            batch_idx: ``(K,)`` image of each box.

        Returns:
            ``(K, C * S * S)``.
        """
        K, S = boxes.shape[0], self.roi_size
        C = feats[0].shape[1]
        if K == 0:
            return feats[0].new_zeros(K, C * S * S)
        lvl = self.level_of(boxes[:, 2:4])
        if self.roi_context != 1.0:  # the grid also covers a margin around the box
            boxes = torch.cat([boxes[:, :2], boxes[:, 2:4] * self.roi_context, boxes[:, 4:]], 1)
        pts = rotated_roi_grid(boxes, S)  # (K, S*S, 2)
        B = feats[0].shape[0]
        sels, vals = [], []
        for level, f in enumerate(feats):  # a handful of levels; boxes are vectorised
            sel = (lvl == level).nonzero().flatten()
            if sel.numel() == 0:
                continue
            stride = self.strides[level]
            h, w = f.shape[-2:]
            # normalised coordinates of grid_sample (align_corners=False): the map covers [0, w*stride]
            g = torch.stack([pts[sel, :, 0] * (2.0 / (w * stride)) - 1, pts[sel, :, 1] * (2.0 / (h * stride)) - 1], -1)
            bi = batch_idx[sel]
            order = torch.argsort(bi, stable=True)
            sel, bi, g = sel[order], bi[order], g[order]
            counts = torch.bincount(bi, minlength=B)
            rank = torch.arange(sel.numel(), device=boxes.device) - (torch.cumsum(counts, 0) - counts)[bi]
            # sampling coordinates never go below float32 (a bf16 grid is off by a fraction of a cell); the maps
            # follow, as CPU autocast also samples in float32
            dt = torch.promote_types(torch.promote_types(f.dtype, g.dtype), torch.float32)
            grid = g.new_full((B, int(counts.max()), S * S, 2), -2.0, dtype=dt)
            grid[bi, rank] = g.to(dt)
            sampled = F.grid_sample(f.to(dt), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            sels.append(sel)
            vals.append(sampled.permute(0, 2, 1, 3)[bi, rank])  # (n, C, S*S)
        # every box has one level: concatenating the levels and undoing the order fills all K rows, in the dtype
        # the sampling gave
        out = torch.cat(vals)[torch.argsort(torch.cat(sels))]  # (K, C, S*S)
        return out.flatten(1)

    def roi_logits(self, heads: Sequence[MILHead], feats: Sequence[Tensor], boxes: Tensor,
                   batch_idx: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Class and instance logits of each head for the rotated RoIs of ``boxes``, ``roi_chunk`` RoIs at a time.

        The RoI features of ``K`` boxes take ``K * C * S * S`` values (12544 per RoI with the DOTA config): kept for
        backward for every proposal of every point, they grow the memory of a step by tens of megabytes per point.
        While gradients are recorded, each chunk's RoI features and head activations are therefore recomputed in
        backward (activation checkpointing); only the logits stay. The result and its gradients are those of one
        pass over all boxes (``roi_chunk: 0``), up to float rounding.

        Args:
            heads: MIL heads applied to the same RoI features.
            feats, boxes, batch_idx: as in :meth:`roi_features`.

        Returns:
            per head ``(cls_logits (K, C or C + 1), ins_logits (K, C))``.
        """
        K = boxes.shape[0]

        def run(b: Tensor, bi: Tensor, *fs: Tensor) -> tuple[Tensor, ...]:
            x = self.roi_features(fs, b, bi)  # (k, C*S*S)
            return tuple(t for h in heads for t in h(x))

        chunk = self.roi_chunk
        if chunk <= 0 or K == 0:
            flat = run(boxes, batch_idx, *feats)
        else:
            recompute = torch.is_grad_enabled()
            parts = []
            for start in range(0, K, chunk):  # a few chunks; the RoIs of a chunk are vectorised
                b, bi = boxes[start:start + chunk], batch_idx[start:start + chunk]
                parts.append(checkpoint(run, b, bi, *feats, use_reentrant=False) if recompute else run(b, bi, *feats))
            flat = tuple(torch.cat(ts) for ts in zip(*parts))
        return [(flat[2 * i], flat[2 * i + 1]) for i in range(len(heads))]

    # ------------------------------------------------------------------------------------------ angles
    def dense_to_sparse(self, amaps: Sequence[Tensor], points: Tensor,
                        batch_idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Average the dense angle encodings within ``d2s_radius`` strides of each point, per level.

        Args:
            amaps: per level ``(B, D, h_l, w_l)``.
            points: ``(N, 2)`` pixels; batch_idx: ``(N,)``.

        Returns:
            ``theta (N, L)`` decoded angles, ``enc (N, L, D)`` mean encodings, ``cells`` the constraint loss of
            the encodings that entered the means, averaged per point and level ``(N, L)``.
        """
        thetas, encs, cons = [], [], []
        for level, a in enumerate(amaps):
            stride = self.strides[level]
            B, D, h, w = a.shape
            r = int(math.ceil(self.d2s_radius)) + 1
            ci = torch.floor(points[:, 1] / stride).long()  # (N,) cell row / column of the point
            cj = torch.floor(points[:, 0] / stride).long()
            off = torch.arange(-r, r + 1, device=points.device)
            oi, oj = torch.meshgrid(off, off, indexing="ij")
            ii = ci[:, None] + oi.reshape(1, -1)  # (N, W2) window cells
            jj = cj[:, None] + oj.reshape(1, -1)
            cy, cx = (ii.to(points.dtype) + 0.5) * stride, (jj.to(points.dtype) + 0.5) * stride
            dist = torch.hypot(cx - points[:, 0:1], cy - points[:, 1:2])
            ok = (dist <= self.d2s_radius * stride) & (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)
            flat = a.flatten(2).transpose(1, 2)  # (B, h*w, D)
            idx = (ii.clamp(0, h - 1) * w + jj.clamp(0, w - 1))  # (N, W2)
            vals = flat[batch_idx[:, None], idx]  # (N, W2, D)
            wgt = ok.to(vals.dtype)
            n = wgt.sum(1).clamp_min(1.0)
            enc = (vals * wgt[..., None]).sum(1) / n[:, None]  # (N, D)
            cons.append((self.coder.constraint_loss(vals) * wgt).sum(1) / n)
            encs.append(enc)
            thetas.append(self.coder.decode(enc))
        return torch.stack(thetas, 1), torch.stack(encs, 1), torch.stack(cons, 1)

    def dense_view_angles(self, amaps: Sequence[Tensor], amaps_v: Sequence[Tensor], view: str, param: float,
                          image_size: tuple[int, int]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Decoded angles of every cell of the original view and of the same image point in another view.

        Args:
            amaps, amaps_v: per level ``(B, D, h_l, w_l)`` encodings of the original and of the view.
            view, param: ``'rotate'`` (angle) or ``'vflip'`` (see :mod:`~visionkit.tasks.obb.pointobb_views`).
            image_size: ``(H, W)`` of both views.

        Returns:
            per level ``theta (B, h_l, w_l)`` of the original, ``theta_v (B, h_l, w_l)`` bilinearly sampled from
            the view at the mapped cell centres, and ``valid (h_l, w_l)`` bool (mapped centre inside the view by
            at least half a stride).
        """
        th_o, th_v, valid = [], [], []
        for level, (a, av) in enumerate(zip(amaps, amaps_v)):
            stride = self.strides[level]
            B, D, h, w = a.shape
            ys = (torch.arange(h, device=a.device, dtype=a.dtype) + 0.5) * stride
            xs = (torch.arange(w, device=a.device, dtype=a.dtype) + 0.5) * stride
            yy, xx = torch.meshgrid(ys, xs, indexing="ij")
            q = V.transform_points(torch.stack([xx.reshape(-1), yy.reshape(-1)], -1), view, image_size, param)
            g = torch.stack([q[:, 0] * (2.0 / (w * stride)) - 1, q[:, 1] * (2.0 / (h * stride)) - 1], -1)
            sampled = F.grid_sample(av, g.view(1, h, w, 2).expand(B, h, w, 2), mode="bilinear",
                                    padding_mode="border", align_corners=False)  # (B, D, h, w)
            th_o.append(self.coder.decode(a.permute(0, 2, 3, 1)))
            th_v.append(self.coder.decode(sampled.permute(0, 2, 3, 1)))
            valid.append(V.inside_image(q, (h * stride, w * stride), margin=stride / 2).view(h, w))
        return th_o, th_v, valid

    # ------------------------------------------------------------------------------------------ MIL
    def stage0_bags(self, points: Tensor, theta: Tensor | None, labels: Tensor) -> Tensor:
        """Stage-0 proposals ``(N, S*R, 5)`` centred on the points.

        ``theta`` ``(N, L)`` per-level angles (None: horizontal); a proposal takes the angle of its level, and
        rotation-agnostic classes stay horizontal.
        """
        N, K = points.shape[0], self.bag_wh.shape[0]
        wh = self.bag_wh[None].expand(N, K, 2).to(points.dtype)
        if theta is None:
            ang = points.new_zeros(N, K)
        else:
            lvl = self.level_of(wh)  # (N, K)
            ang = theta.gather(1, lvl)
            ang = torch.where(self.agnostic[labels][:, None], torch.zeros_like(ang), ang)
        return torch.cat([points[:, None].expand(N, K, 2), wh, ang[..., None]], -1)

    def stage1_bags(self, boxes0: Tensor) -> Tensor:
        """Stage-1 proposals ``(N, J, 5)`` jittered around stage-0 boxes ``(N, 5)``."""
        j = self.jitter.to(boxes0.dtype)  # (J, 4): fw, fh, ox, oy
        cx, cy, w, h, th = (boxes0[:, i:i + 1] for i in range(5))
        w2, h2 = w * j[None, :, 0], h * j[None, :, 1]
        du, dv = j[None, :, 2] * w2, j[None, :, 3] * h2
        c, s = torch.cos(th), torch.sin(th)
        x, y = cx + du * c - dv * s, cy + du * s + dv * c
        return torch.stack([x, y, w2, h2, th.expand_as(x)], -1)

    def negatives(self, boxes0: Tensor, batch_idx: Tensor, batch_size: int,
                  image_size: tuple[int, int], points: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Random negative proposals: ``boxes (M, 5)`` and their images ``(M,)`` (IoU < ``neg_iou_thr`` with every
        stage-0 box ``(N, 5)`` of their image and, when the points ``(N, 2)`` are given, containing none of the
        image's points)."""
        H, W = image_size
        n = self.num_negatives
        dev, dt = boxes0.device, boxes0.dtype
        counts = torch.bincount(batch_idx, minlength=batch_size)
        if n == 0 or boxes0.shape[0] == 0:
            return boxes0.new_zeros(0, 5), batch_idx.new_zeros(0)
        bi = torch.arange(batch_size, device=dev).repeat_interleave(n)
        bi = bi[counts[bi] > 0]
        first = torch.cumsum(counts, 0) - counts
        pick = first[bi] + (torch.rand(bi.shape[0], device=dev) * counts[bi]).long().clamp_max(counts[bi] - 1)
        wh = boxes0[pick, 2:4] * (0.5 + torch.rand(bi.shape[0], 2, device=dev, dtype=dt))
        xy = torch.rand(bi.shape[0], 2, device=dev, dtype=dt) * torch.tensor([W, H], device=dev, dtype=dt)
        th = (torch.rand(bi.shape[0], 1, device=dev, dtype=dt) - 0.5) * math.pi
        neg = torch.cat([xy, wh, th], 1)
        same = bi[:, None] == batch_idx[None]  # (M, N) negative and object in the same image
        iou = box_iou_rotated(neg, boxes0)  # (M, N)
        keep = torch.where(same, iou, torch.zeros_like(iou)).amax(1) < self.neg_iou_thr
        if points is not None:  # a negative covers no annotated point of its image
            inside = points_in_obb(points, neg).T if neg.shape[0] else same  # (M, N)
            keep &= ~(inside & same).any(1)
        return neg[keep], bi[keep]

    @staticmethod
    def scaled_negatives(boxes0: Tensor, batch_idx: Tensor, factors: Sequence[float]) -> tuple[Tensor, Tensor]:
        """Negatives made of stage-0 boxes ``(N, 5)`` with both sides times each factor: ``boxes (N*F, 5)``
        (object-major) and their images ``(N*F,)``; a factor ``f`` gives the IoU ``min(f, 1/f)^2`` with its box."""
        f = torch.tensor([float(v) for v in factors], device=boxes0.device, dtype=boxes0.dtype)
        b = boxes0[:, None].expand(-1, f.numel(), 5)
        out = torch.cat([b[..., :2], b[..., 2:4] * f[None, :, None], b[..., 4:]], -1).reshape(-1, 5)
        return out, batch_idx.repeat_interleave(f.numel())

    def mil_scores(self, head: MILHead, feats: Sequence[Tensor], bags: Tensor, batch_idx: Tensor, sigmoid: bool,
                   keep: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Class and instance probabilities of bags ``(N, K, 5)``: ``cls (N, K, C)`` (softmax over classes, or
        sigmoid; with a background head, the class columns of the softmax over classes + background),
        ``ins (N, K, C)`` (softmax over the bag, restricted to the proposals where ``keep (N, K)`` is true when
        given) and the raw class logits ``(N, K, C)``."""
        N, K = bags.shape[:2]
        (cls_logit, ins_logit), = self.roi_logits([head], feats, bags.reshape(-1, 5), batch_idx.repeat_interleave(K))
        cls_logit, ins_logit = cls_logit.view(N, K, cls_logit.shape[-1]), ins_logit.view(N, K, ins_logit.shape[-1])
        if keep is not None:
            ins_logit = ins_logit.masked_fill(~keep[..., None], float("-inf"))
        cls = torch.sigmoid(cls_logit) if sigmoid else torch.softmax(cls_logit, -1)
        if head.background:  # the bag scores use the class columns of the softmax over classes + background
            cls, cls_logit = cls[..., :-1], cls_logit[..., :-1]
        return cls, torch.softmax(ins_logit, 1), cls_logit

    def free_of_other_points(self, bags: Tensor, points: Tensor, batch_idx: Tensor) -> Tensor | None:
        """``(N, K)`` bool: proposal ``k`` of point ``n``'s bag covers no other point of its image (rows where
        every proposal covers one keep them all); None when ``exclude_other_points`` is off."""
        if not self.exclude_other_points or bags.shape[0] == 0:
            return None
        N, K = bags.shape[:2]
        other = (batch_idx[:, None] == batch_idx[None]) & ~torch.eye(N, dtype=torch.bool, device=bags.device)
        bi, pj = other.nonzero(as_tuple=True)  # (bag, other point) pairs of the same image
        inside = points_in_obb(points[pj][:, None], bags[bi], aligned=True)  # (pairs, K)
        covered = bags.new_zeros(N, K).index_add_(0, bi, inside.to(bags.dtype)) > 0
        keep = ~covered
        return keep | ~keep.any(1, keepdim=True)

    def pseudo_boxes(self, bags: Tensor, cls: Tensor, ins: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Score-weighted mean of the top-k proposals of each bag for the point's class -> boxes ``(N, 5)`` and
        bag scores ``(N,)``."""
        idx = labels[:, None, None].expand(-1, bags.shape[1], 1)
        score = (cls.gather(2, idx) * ins.gather(2, idx)).squeeze(2)  # (N, K)
        k = min(self.topk, bags.shape[1])
        top, ti = score.topk(k, dim=1)
        boxes = weighted_box_mean(bags.gather(1, ti[..., None].expand(-1, -1, 5)), top)
        return boxes, score.sum(1)

    # ------------------------------------------------------------------------------------------ inference
    def run(self, images: Tensor, points: Sequence[Tensor], labels: Sequence[Tensor],
            rotate_proposals: bool = True) -> PointOBBOutputs:
        """Pseudo boxes for a batch, with the intermediate tensors the losses use.

        Args:
            images: ``(B, 3, H, W)`` in [0, 1].
            points: per image ``(N_i, 2)`` pixels; labels: per image ``(N_i,)``.
            rotate_proposals: write the predicted angles into the proposals (else horizontal proposals).

        Returns:
            :class:`PointOBBOutputs` of all points, image by image.
        """
        dev = images.device
        size = (int(images.shape[-2]), int(images.shape[-1]))
        pts = torch.cat([p.to(dev, images.dtype).reshape(-1, 2) for p in points]) if len(points) else \
            images.new_zeros(0, 2)
        lab = torch.cat([torch.as_tensor(y, device=dev).long().reshape(-1) for y in labels]) if len(labels) else \
            torch.zeros(0, dtype=torch.long, device=dev)
        bidx = torch.cat([torch.full((len(p),), i, device=dev, dtype=torch.long) for i, p in enumerate(points)]) \
            if len(points) else lab
        feats = self.features(images)
        amaps = self.angle_maps(feats, images)
        theta, _, cons = self.dense_to_sparse(amaps, pts, bidx)
        bags0 = self.stage0_bags(pts, theta.detach() if rotate_proposals else None, lab)
        keep0 = self.free_of_other_points(bags0, pts, bidx)
        cls0, ins0, _ = self.mil_scores(self.head0, feats, bags0, bidx, sigmoid=self.stage0_sigmoid, keep=keep0)
        box0, bag0 = self.pseudo_boxes(bags0, cls0, ins0, lab)
        bags1 = self.stage1_bags(box0.detach())
        keep1 = self.free_of_other_points(bags1, pts, bidx)
        cls1, ins1, _ = self.mil_scores(self.head1, feats, bags1, bidx, sigmoid=True, keep=keep1)
        box1, bag1 = self.pseudo_boxes(bags1, cls1, ins1, lab)
        box, bag = (box1, bag1) if self.pseudo_stage == 1 else (box0, bag0)
        return PointOBBOutputs(
            boxes=regularize_obb(box.detach(), "le90"), scores=bag.detach().clamp(0, 1), labels=lab, batch_idx=bidx,
            points=pts, image_size=size, feats=feats, angle_maps=amaps, theta=theta, constraint=cons,
            stage0=MILStage(bags0, cls0, ins0, box0, bag0, keep0),
            stage1=MILStage(bags1, cls1, ins1, box1, bag1, keep1))

    @torch.no_grad()
    def predict(self, images: Tensor, points: Sequence[Tensor], labels: Sequence[Tensor],
                rotate_proposals: bool = True) -> list[dict[str, Tensor]]:
        """Pseudo boxes per image: ``boxes (N_i, 5)`` le90, ``scores (N_i,)``, ``labels (N_i,)`` (the point order)."""
        return self.run(images, points, labels, rotate_proposals).per_image(images.shape[0])


# ---------------------------------------------------------------------------------------------- metric
class PseudoBoxIoU(Metric):
    """Mean rotated IoU of pseudo boxes with the true boxes of their points (sum and count, summed under DDP).

    ``update(pred_boxes (N, 5), true_boxes (N, 5))`` with row ``n`` of both describing the same object.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred_boxes: Tensor, true_boxes: Tensor) -> None:
        if pred_boxes.shape != true_boxes.shape:
            raise ValueError(f"PseudoBoxIoU: {tuple(pred_boxes.shape)} pseudo boxes vs {tuple(true_boxes.shape)} "
                             f"true boxes")
        if pred_boxes.numel():
            iou = box_iou_rotated(pred_boxes.double(), true_boxes.double(), aligned=True)
            self.total += iou.sum().to(self.total.device)
            self.count += float(iou.numel())

    def compute(self) -> Tensor:
        return self.total / self.count.clamp_min(1.0)


# ---------------------------------------------------------------------------------------------- task
class PointOBBTask(OBBTask):
    """Point-supervised oriented detection: learns pseudo rotated boxes from one point per object.

    Batch keys: ``image (B, 3, H, W)`` in [0, 1], ``points`` list of ``(N_i, 2)`` pixels and the point classes in
    ``point_labels`` (when present, e.g. read from point files) or ``labels``; evaluation also reads ``gt_boxes``
    (true oriented boxes, same order as the points when they are derived from the boxes) and ``difficult``.
    ``task(batch)`` returns ``{"boxes": [(N_i, 5)], "scores": [(N_i,)], "labels": [(N_i,)]}``: one pseudo box per
    point, le90, scored by the stage-1 bag score.

    Metrics: ``miou`` (mean rotated IoU of each pseudo box with its object's true box; when the points are not
    aligned with the true boxes, each true box is compared with the best pseudo box of its class) and ``map50``
    of the pseudo boxes against the true boxes (DOTA protocol, :class:`~visionkit.tasks.obb.dota_map.DOTAMeanAP`).

    The method and its design choices are described in :mod:`visionkit.tasks.obb.pointobb`.

    Args:
        num_classes: foreground classes; class_names: their names (both from the datamodule in the CLI).
        pointobb: the network's options (backbone, bags, heads, angle head, memory), :class:`PointOBBConfig`;
            in a config ``model.init_args.pointobb.<option>``.
        angle_coder: ``"ucr"`` (default), ``"psc"`` or ``"plain"``; coder_kwargs: its arguments.
        ssc_cls_weight, ssc_ins_weight: SSC weights of the class and instance score distributions.
        sym_weight, sym_beta: weight and smooth-L1 beta of the symmetry loss.
        sym_dense_weight: weight of the same symmetry relation applied at every cell of every FPN level
            (0: only at the points, as in the paper).
        constraint_loss_weight: weight of the coder's constraint loss (UCR's unit circle).
        neg_loss_weight: weight of the negative (background) focal loss.
        neg_avoid_points: negatives must also contain none of their image's points.
        scale_negatives: side factors of extra negatives per object: its stage-0 box shrunk (``< 1``: a part of
            the object) or grown (``> 1``: the object and much of its surroundings); a factor ``f`` gives the IoU
            ``min(f, 1/f)^2`` with the stage-0 box (empty: none, as in the paper).
        view_scale_range: range of the resize factor; view_angle_range: rotation range in units of pi;
        rotate_prob: probability of the rotated view (else flipped).
        rotate_padding: fill of the rotated view's corners, ``'zeros'`` or ``'reflection'`` (see
            :func:`~visionkit.tasks.obb.pointobb_views.rotate_view`), or ``'disc'``: the symmetry loss compares
            the disc inscribed in the image (outside filled with the image mean) in both views, at the cost of one
            more backbone pass, and skips points outside the disc.
        angle_loss_start, angle_proposal_start: fractions of the training steps at which the symmetry loss is
            switched on and the predicted angles are written into the proposals.
        map_ap_mode, map_match: DOTA mAP options.
        **kwargs: optimisation arguments of :class:`~visionkit.tasks.base.BaseTask`.
    """

    monitor = "val_miou"
    monitor_mode = "max"

    def __init__(
        self,
        num_classes: int = 3,
        class_names: list[str] | None = None,
        pointobb: PointOBBConfig = PointOBBConfig(),  # noqa: B008 (frozen: one shared default is safe)
        angle_coder: Literal["ucr", "psc", "plain"] = "ucr",
        coder_kwargs: dict[str, Any] | None = None,
        ssc_cls_weight: float = 1.0,
        ssc_ins_weight: float = 2.0,
        sym_weight: float = 0.5,
        sym_beta: float = 0.1,
        sym_dense_weight: float = 0.0,
        constraint_loss_weight: float = 0.05,
        neg_loss_weight: float = 1.0,
        neg_avoid_points: bool = True,
        scale_negatives: list[float] = (),
        view_scale_range: tuple[float, float] = (0.5, 1.5),
        view_angle_range: tuple[float, float] = (0.25, 0.75),
        rotate_prob: float = 0.95,
        rotate_padding: Literal["zeros", "reflection", "disc"] = "zeros",
        angle_loss_start: float = 0.25,
        angle_proposal_start: float = 0.6,
        map_ap_mode: Literal["voc07", "area"] = "voc07",
        map_match: Literal["gt", "ge"] = "gt",
        **kwargs: Any,
    ) -> None:
        self.check_class_names(num_classes, class_names)
        if not 0 <= angle_loss_start <= angle_proposal_start:
            raise ValueError("model.init_args.angle_loss_start/angle_proposal_start: need 0 <= angle_loss_start <= "
                             f"angle_proposal_start, got {angle_loss_start}, {angle_proposal_start}")
        bad_f = [f for f in scale_negatives if not (float(f) > 0 and float(f) != 1.0)]
        if bad_f:
            raise ValueError(f"model.init_args.scale_negatives: factors must be positive and not 1, got {bad_f}")
        if rotate_padding not in ("zeros", "reflection", "disc"):
            raise ValueError(f"model.init_args.rotate_padding: expected 'zeros', 'reflection' or 'disc', "
                             f"got {rotate_padding!r}")
        reject_moved_options(PointOBBConfig, kwargs, "pointobb")
        # the hyperparameters (read from this frame by save_hyperparameters) hold plain values, so that checkpoints
        # load with weights_only=True
        pointobb = asdict(model_config(PointOBBConfig, pointobb, "pointobb"))  # noqa: F841
        super().__init__(**kwargs)

    # ------------------------------------------------------------------------------------------ hooks
    def configure_models(self) -> None:
        hp = self.hparams
        self.coder = self.build_angle_coder()
        self.model = PointOBB(hp.num_classes, self.coder, model_config(PointOBBConfig, hp.pointobb, "pointobb"))
        # fraction of the schedule reached in training; saved with checkpoints so that evaluation and predict
        # after training use the same proposal mode
        self.register_buffer("progress", torch.zeros((), dtype=torch.float64))

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({
            "miou": PseudoBoxIoU(),
            "map": self.dota_map(),
        })

    # ------------------------------------------------------------------------------------------ helpers
    @staticmethod
    def point_labels(batch: dict[str, Any]) -> list[Tensor]:
        return list(batch["point_labels"] if "point_labels" in batch else batch["labels"])

    def rotate_proposals(self) -> bool:
        return bool(self.progress >= self.hparams.angle_proposal_start)

    def _update_progress(self) -> None:
        if self._trainer is not None and self.training:
            total = max(1, int(self.trainer.estimated_stepping_batches))
            self.progress.fill_(min(1.0, self.global_step / total))

    # ------------------------------------------------------------------------------------------ losses
    def compute_outputs(self, batch: dict[str, Any]) -> PointOBBOutputs:
        """One pass of :meth:`PointOBB.run` (features, angle maps, both MIL stages, pseudo boxes)."""
        self._update_progress()
        return self.model.run(batch["image"], list(batch["points"]), self.point_labels(batch),
                              rotate_proposals=self.rotate_proposals())

    def compute_losses(self, outputs: PointOBBOutputs, batch: dict[str, Any]) -> dict[str, Tensor]:
        hp = self.hparams
        m = self.model
        images = batch["image"]
        prog = float(self.progress)
        angle_on = prog >= hp.angle_loss_start
        out = outputs
        lab = out.labels
        zero = images.sum() * 0.0
        n = lab.shape[0]
        if n == 0:
            return {"loss": zero, "mil0": zero, "mil1": zero, "neg": zero, "ssc": zero, "sym": zero,
                    "constraint": zero}
        onehot = F.one_hot(lab, hp.num_classes).to(images.dtype)
        mil0 = L.mil_loss(out.stage0.cls, out.stage0.ins, onehot)
        mil1 = L.mil_loss(out.stage1.cls, out.stage1.ins, onehot)
        neg = L.negatives_loss(m, out, images.shape[0], avoid_points=hp.neg_avoid_points,
                               scale_factors=hp.scale_negatives, weight=hp.neg_loss_weight, zero=zero)
        views = V.sample_views(scale_range=tuple(hp.view_scale_range), angle_range=tuple(hp.view_angle_range),
                               rotate_prob=hp.rotate_prob)
        ssc = L.ssc_loss(m, out, images, views.scale, cls_weight=hp.ssc_cls_weight, ins_weight=hp.ssc_ins_weight)
        sym, con = zero, zero
        if angle_on:
            sym, con = L.symmetry_loss(m, out, images, views, padding=hp.rotate_padding, beta=hp.sym_beta,
                                       weight=hp.sym_weight, dense_weight=hp.sym_dense_weight,
                                       constraint_weight=hp.constraint_loss_weight, zero=zero)
        total = mil0 + mil1 + neg + ssc + sym + con
        return {"loss": total, "mil0": mil0, "mil1": mil1, "neg": neg, "ssc": ssc, "sym": sym, "constraint": con}

    # ------------------------------------------------------------------------------------------ inference
    def postprocess(self, outputs: PointOBBOutputs, batch: dict[str, Any]) -> dict[str, list[Tensor]]:
        """Pseudo boxes per image: ``boxes (N_i, 5)`` le90, ``scores (N_i,)``, ``labels (N_i,)``, one per point."""
        res = outputs.per_image(batch["image"].shape[0])
        return {k: [r[k] for r in res] for k in ("boxes", "scores", "labels")}

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        preds = self(batch)
        preds["image_id"] = list(batch.get("image_id", [str(batch_idx * len(preds["boxes"]) + i)
                                                        for i in range(len(preds["boxes"]))]))
        return preds

    def update_metrics(self, metrics: MetricCollection, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        gts = batch.get("gt_boxes", batch.get("boxes"))
        if gts is None:
            return
        n = len(gts)
        difficult = batch.get("difficult")
        if difficult is None:
            difficult = [torch.zeros(len(g), dtype=torch.bool) for g in gts]
        gt_labels = batch["labels"]
        pb, tb = [], []
        for i in range(n):
            p, pl = preds["boxes"][i].detach(), preds["labels"][i].long()
            g, gl = gts[i].to(p), torch.as_tensor(gt_labels[i]).long().to(pl.device)
            if p.shape == g.shape and torch.equal(pl, gl):
                pb.append(p)
            elif len(g) and len(p):  # points not aligned with the boxes: best same-class pseudo box per true box
                iou = box_iou_rotated(g.double(), p.double())
                iou = torch.where(gl[:, None] == pl[None], iou, torch.full_like(iou, -1.0))
                best = iou.argmax(1)
                ok = iou.gather(1, best[:, None]).squeeze(1) >= 0
                pb.append(torch.where(ok[:, None], p[best], torch.zeros_like(g)))
            else:
                pb.append(torch.zeros_like(g))
            tb.append(g)
        if pb:
            metrics["miou"].update(torch.cat(pb), torch.cat(tb))
        p = [{"boxes": preds["boxes"][i].detach(), "scores": preds["scores"][i].detach(),
              "labels": preds["labels"][i].detach()} for i in range(n)]
        t = [{"boxes": gts[i], "labels": gt_labels[i], "difficult": difficult[i]} for i in range(n)]
        metrics["map"].update(p, t)
