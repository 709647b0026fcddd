"""DIR: decoupled iterative refinement for two interacting hands (a plain ``nn.Module``).

An initial estimate per hand comes from the coarsest backbone map (per-hand spatial attention + linear).
Each refinement iteration then

1. samples joint-wise features with ``grid_sample`` at the current 2D joints (weak perspective per hand; a
   small grid of map cells around each joint),
2. mixes them within each hand by a graph convolution over the 21-joint tree (learnable adjacency),
3. mixes all 42 joints of both hands with a transformer layer,
4. projects the joint features back to 2D without mixing them: every bone (2 hands x 20 bones) splats its
   feature onto the pixels within ``splat_radius`` of the bone, into its own channel group, and a conv fuses
   these maps with the visual map (the fused map feeds the next iteration at a finer stride),
5. regresses the hand parameters again from the joint features and the detached previous estimate.

Per-joint 2D evidence (``keypoint_stride``): a heatmap head on one pyramid map gives 42 joint heatmaps and, by
soft-argmax, 2D keypoints. They enter (detached) the initial estimate, which then lifts the 2D skeleton of each
hand to its articulation, and every refinement iteration, whose joint tokens and regression head see where the
evidence lies relative to the current projection (``keypoint - uv``), so an iteration can correct single fingers.

Local heatmap evidence (``local_window``): the global keypoints are the same for every iteration, so once the
first iteration has used them the second has nothing new to go on (it learns to return its input). With
``local_window = k`` every iteration also reads each joint's own heatmap (log-probabilities, detached) on a
``k x k`` grid of heatmap cells centred at the joint's current projection and takes the soft-argmax within that
window: an offset that depends on the current estimate and is sharper the closer the estimate is (centred at the
true joints it is far more precise than the global soft-argmax). Each iteration reads the heatmaps at its own
stride (``refine_strides``; probabilities summed over the cells of a coarser map), so in the coarse-to-fine
order of DIR the last iteration alone sees the finest per-joint evidence and has something to add to the one
before it (with the same evidence for both, the second iteration learnt to return its input).

Perturbed starting estimates (``refine_noise``): trained only on the outputs of the iteration before it, a later
iteration sees inputs whose remaining error the shared evidence cannot predict, and learns to return them. In
training, the estimate handed to each iteration after the first moves element-wise by ``refine_noise * N(0, 1)``
times the previous iteration's update, so the later iteration learns to correct errors of the size and kind an
iteration leaves; at test time (no noise) it then improves on the one before it.

Parameters per hand (64 numbers): root rotation (6D), pose (45, hand-layer axis-angle), shape (10), weak
perspective camera (3: log-scale, tx, ty in normalised image coordinates), plus the right-to-left root offset
(3, mm) for the pair. Weak perspective: ``uv = s · xy / 100 + t`` with ``xy`` root-relative in mm and ``uv``
in ``[-1, 1]`` image coordinates (``grid_sample`` convention, ``align_corners=False``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from visionkit.backbones import build_backbone
from visionkit.ops.rotations import rotation_6d_to_matrix
from visionkit.tasks.hands.kinematics import BONES, INTERHAND_PARENTS, ROOT, root_relative

NUM_PARAMS = 64
_SLICES = {"rot6d": slice(0, 6), "pose": slice(6, 51), "betas": slice(51, 61), "cam": slice(61, 64)}
_CAM_SCALE = 0.5  # initial weak-perspective scale (normalised units per 100 mm)


def _tree_adjacency() -> Tensor:
    """Symmetric-normalised adjacency of one hand's joint tree with self loops, ``(21, 21)``."""
    A = torch.eye(21)
    for j, p in enumerate(INTERHAND_PARENTS):
        if p >= 0:
            A[j, p] = A[p, j] = 1
    d = A.sum(1).rsqrt()
    return d[:, None] * A * d[None]


def _mlp(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.GELU(), nn.Linear(hidden, cout))


def soft_argmax(logits: Tensor) -> Tensor:
    """Expected position of each heatmap, ``(B, N, h, w)`` logits -> ``(B, N, 2)`` normalised ``[-1, 1]``
    coordinates (pixel centres at ``(2 i + 1) / w - 1``, the ``grid_sample(align_corners=False)`` convention)."""
    B, N, h, w = logits.shape
    prob = logits.flatten(2).softmax(-1).reshape(B, N, h, w)
    xs = (2 * torch.arange(w, device=logits.device, dtype=logits.dtype) + 1) / w - 1
    ys = (2 * torch.arange(h, device=logits.device, dtype=logits.dtype) + 1) / h - 1
    return torch.stack([(prob.sum(2) * xs).sum(-1), (prob.sum(3) * ys).sum(-1)], -1)


def local_evidence(log_prob: Tensor, uv: Tensor, window: int) -> tuple[Tensor, Tensor]:
    """Each joint's heatmap read in a window around its current 2D position.

    Args:
        log_prob: ``(B, N, h, w)`` heatmap log-probabilities (log-softmax over each map).
        uv: ``(B, N, 2)`` current joints in normalised ``[-1, 1]`` coordinates.
        window: samples per side; the samples lie one heatmap cell apart, centred at ``uv`` (bilinear, border
            padding).

    Returns:
        ``offset (B, N, 2)``: soft-argmax within the window minus ``uv`` (normalised units), and ``values
        (B, N, window ** 2 + 1)``: the window's log-probabilities relative to their log-sum-exp, then that
        log-sum-exp (the log of the probability mass in the window: how much evidence lies near ``uv``).
    """
    B, N, h, w = log_prob.shape
    r = torch.arange(window, device=uv.device, dtype=uv.dtype) - (window - 1) / 2
    offs = torch.stack(torch.meshgrid(r, r, indexing="xy"), -1).reshape(-1, 2) * uv.new_tensor([2.0 / w, 2.0 / h])
    grid = (uv[:, :, None] + offs).reshape(B * N, 1, -1, 2)
    s = F.grid_sample(log_prob.reshape(B * N, 1, h, w), grid, align_corners=False, padding_mode="border")
    s = s.reshape(B, N, -1)
    mass = s.logsumexp(-1, keepdim=True)
    offset = ((s - mass).exp()[..., None] * offs).sum(-2)
    return offset, torch.cat([s - mass, mass], -1)


def _init_head(head: nn.Sequential, n_hands: int) -> None:
    """Zero the last layer and set its bias to the identity rotation and unit camera scale."""
    last = head[-1]
    nn.init.zeros_(last.weight)
    bias = torch.zeros(n_hands, NUM_PARAMS)
    bias[:, 0], bias[:, 4] = 1.0, 1.0  # 6D of the identity: first two columns (1,0,0), (0,1,0)
    with torch.no_grad():
        last.bias.copy_(bias.flatten())


class GraphConv(nn.Module):
    """Residual graph convolution over one hand's joints with a learnable adjacency (init: the tree)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.adjacency = nn.Parameter(_tree_adjacency())
        self.linear = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, H, 21, D)`` -> same shape."""
        return x + F.gelu(self.linear(self.adjacency @ self.norm(x)))


def bone_splat(uv: Tensor, feat: Tensor, height: int, width: int, radius: float) -> Tensor:
    """Splat per-bone features onto the pixels near each bone, one channel group per bone.

    Args:
        uv: ``(B, 42, 2)`` joints in normalised ``[-1, 1]`` image coordinates.
        feat: ``(B, 40, c)`` features of the 40 bones (right then left hand, :data:`BONES` order).
        height, width: target map size.
        radius: reach of a bone in map pixels (weights fall linearly to 0 at ``radius``).

    Returns:
        ``(B, 40 * c, H, W)``.
    """
    B, nb, c = feat.shape
    px = (uv + 1) * uv.new_tensor([width, height]) / 2  # map pixel coordinates
    child = torch.tensor([a for a, _ in BONES], device=uv.device)
    parent = torch.tensor([b for _, b in BONES], device=uv.device)
    child, parent = torch.cat([child, child + 21]), torch.cat([parent, parent + 21])
    a, b = px[:, child, None], px[:, parent, None]  # (B, 40, 1, 2)
    v, u = torch.meshgrid(torch.arange(height, device=uv.device, dtype=uv.dtype) + 0.5,
                          torch.arange(width, device=uv.device, dtype=uv.dtype) + 0.5, indexing="ij")
    pix = torch.stack([u, v], -1).reshape(1, 1, -1, 2)
    ab, ap = b - a, pix - a
    t = ((ap * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-6)).clamp(0, 1)  # (B, 40, HW)
    d = (ap - t[..., None] * ab).norm(dim=-1)
    w = (1 - d / radius).clamp_min(0)
    return (w[:, :, None] * feat[..., None]).reshape(B, nb * c, height, width)


class RefineBlock(nn.Module):
    """One decoupled refinement iteration (see the module docstring)."""

    def __init__(self, dim: int, heads: int, bone_channels: int, splat_radius: float, hidden: int,
                 patch: int = 3, keypoints: bool = False, local_window: int = 0, detach: bool = True) -> None:
        super().__init__()
        self.splat_radius, self.patch, self.keypoints, self.detach = splat_radius, patch, keypoints, detach
        self.local_window = local_window if keypoints else 0
        n_local = 2 + self.local_window**2 + 1 if self.local_window else 0
        self.sample_proj = nn.Linear(patch * patch * dim, dim)
        self.geom = nn.Linear((7 if keypoints else 5) + n_local, dim)
        self.joint_embed = nn.Parameter(torch.randn(42, dim) * 0.02)
        self.gcn = GraphConv(dim)
        self.transformer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True,
                                                      norm_first=True)
        self.bone_feat = nn.Linear(dim, bone_channels)
        self.fuse = nn.Sequential(nn.Conv2d(dim + 40 * bone_channels, dim, 1), nn.GroupNorm(8, dim),
                                  nn.ReLU(inplace=True), nn.Conv2d(dim, dim, 3, padding=1))
        self.head = _mlp(21 * 2 * dim + NUM_PARAMS + (42 if keypoints else 0) + (42 if self.local_window else 0),
                         hidden, NUM_PARAMS)
        self.offset_head = _mlp(2 * dim + 3, hidden // 2, 3)
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        nn.init.zeros_(self.offset_head[-1].weight)
        nn.init.zeros_(self.offset_head[-1].bias)

    def forward(self, fmap: Tensor, params: Tensor, offset: Tensor, rel: Tensor, uv: Tensor,
                keypoints: Tensor | None = None, log_prob: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Refine the estimate.

        Args:
            fmap: ``(B, D, h, w)`` visual map.
            params: ``(B, 2, 64)`` previous hand parameters; offset ``(B, 3)`` previous right-to-left offset.
            rel: ``(B, 42, 3)`` previous root-relative joints (mm); uv ``(B, 42, 2)`` their normalised 2D.
            keypoints: ``(B, 42, 2)`` normalised 2D joint evidence (required if built with ``keypoints``).
            log_prob: ``(B, 42, h, w)`` joint-heatmap log-probabilities (required with ``local_window``).

        Returns:
            new ``params``, new ``offset`` and the fused map ``(B, D, h, w)``.
        """
        B, D, h, w = fmap.shape
        if self.detach:
            params, offset, rel, uv = params.detach(), offset.detach(), rel.detach(), uv.detach()
        # joint-wise features: a patch x patch grid of samples one map cell apart around each projected joint,
        # so the tokens see where the image evidence lies relative to the current estimate
        r = torch.arange(self.patch, device=uv.device, dtype=uv.dtype) - (self.patch - 1) / 2
        cell = uv.new_tensor([2.0 / w, 2.0 / h])
        offs = torch.stack(torch.meshgrid(r, r, indexing="xy"), -1).reshape(-1, 2) * cell  # (P, 2)
        grid = uv[:, :, None] + offs  # (B, 42, P, 2)
        sampled = F.grid_sample(fmap, grid, align_corners=False)  # (B, D, 42, P)
        sampled = self.sample_proj(sampled.permute(0, 2, 3, 1).reshape(B, 42, -1))
        geom = [rel / 100, uv]
        if self.keypoints:
            if keypoints is None:
                raise ValueError("RefineBlock built with keypoints=True needs the keypoints (B, 42, 2)")
            evidence = 4 * (keypoints.detach() - uv)  # (B, 42, 2): where the 2D evidence lies, ~1 per 16 px
            geom.append(evidence)
        if self.local_window:
            if log_prob is None:
                raise ValueError("RefineBlock built with local_window needs the heatmap log-probabilities")
            local_offset, values = local_evidence(log_prob.detach(), uv, self.local_window)
            local_offset = 16 * local_offset  # ~1 per 4 px: one heatmap cell at stride 4
            geom += [local_offset, values / 4]
        x = sampled + self.geom(torch.cat(geom, -1)) + self.joint_embed
        x = self.gcn(x.reshape(B, 2, 21, D)).reshape(B, 42, D)  # intra-hand
        x = self.transformer(x)  # inter-hand
        child = torch.tensor([a for a, _ in BONES], device=x.device)
        parent = torch.tensor([b for _, b in BONES], device=x.device)
        child, parent = torch.cat([child, child + 21]), torch.cat([parent, parent + 21])
        bones = self.bone_feat((x[:, child] + x[:, parent]) / 2)  # (B, 40, c)
        splat = bone_splat(uv, bones, h, w, self.splat_radius)
        fused = fmap + self.fuse(torch.cat([fmap, splat], 1))
        resampled = F.grid_sample(fused, uv[:, :, None], align_corners=False).squeeze(-1).transpose(1, 2)
        j = [torch.cat([x, resampled], -1).reshape(B, 2, 21 * 2 * D), params]
        if self.keypoints:
            j.append(evidence.reshape(B, 2, 42))
        if self.local_window:
            j.append(local_offset.reshape(B, 2, 42))
        params = params + self.head(torch.cat(j, -1))
        pooled = torch.cat([x, resampled], -1).mean(1)
        offset = offset + 100 * self.offset_head(torch.cat([pooled, offset / 100], -1))
        return params, offset, fused


class DIRNet(nn.Module):
    """Decoupled iterative refinement network for two hands.

    Args:
        hand_layers: ``[right, left]`` hand layers (``ProceduralHandLayer`` or ``MANOLayer``), called as
            ``layer(global_orient (B, 3, 3), hand_pose (B, 45), betas (B, 10))``.
        backbone: registry or timm name; must give maps at strides 8, 16 and 32.
        backbone_kwargs: extra backbone arguments.
        dim: feature width of the fused maps and joint tokens.
        num_iterations: refinement iterations (paper: 2).
        refine_strides: map stride used by each iteration (the last one repeats), paper: 16 then 8.
        heads: transformer heads.
        bone_channels: channels per bone in the 2D projection.
        splat_radius: bone reach in map pixels.
        hidden: width of the regression MLPs.
        patch: joint features are sampled on a ``patch x patch`` grid of map cells around each joint.
        keypoint_stride: stride of the map that the 42 joint heatmaps are predicted on (None: no heatmaps);
            their soft-argmax 2D keypoints feed the initial estimate and every iteration.
        local_window: with ``keypoint_stride``, every iteration also reads each joint's heatmap on a
            ``local_window x local_window`` grid of heatmap cells around the joint's current projection, with
            the heatmaps taken to the iteration's stride (see the module docstring); 0: off.
        detach_iterations: every iteration starts from the detached previous estimate (True, the default), so
            each iteration's loss trains only that iteration; False lets the later iterations' losses train
            the earlier iterations (and the initial estimate) through the estimate they hand on.
        refine_noise: in training mode only, the estimate handed to each iteration after the first is perturbed
            element-wise by ``refine_noise * N(0, 1)`` times the previous iteration's update to it (parameters
            and right-to-left offset), so the later iteration learns to correct an estimate rather than to
            return it; 0: off. Evaluation is unchanged.
    """

    def __init__(self, hand_layers: Sequence[nn.Module], backbone: str = "simple_cnn",
                 backbone_kwargs: dict[str, Any] | None = None, dim: int = 64, num_iterations: int = 2,
                 refine_strides: Sequence[int] = (16, 8), heads: int = 4, bone_channels: int = 4,
                 splat_radius: float = 1.5, hidden: int = 256, patch: int = 3,
                 keypoint_stride: int | None = None, local_window: int = 0, detach_iterations: bool = True,
                 refine_noise: float = 0.0) -> None:
        super().__init__()
        if refine_noise < 0:
            raise ValueError(f"refine_noise must be >= 0, got {refine_noise}")
        self.refine_noise = refine_noise
        if local_window and not keypoint_stride:
            raise ValueError("local_window reads the joint heatmaps: it needs keypoint_stride")
        self.hand_layers = nn.ModuleList(hand_layers)
        self.backbone = build_backbone(backbone, **(backbone_kwargs or {}))
        strides = list(self.backbone.strides)
        self.refine_strides = [refine_strides[min(i, len(refine_strides) - 1)] for i in range(num_iterations)]
        self.keypoint_stride = keypoint_stride
        used = [*self.refine_strides, *([keypoint_stride] if keypoint_stride else [])]
        finest = min(used, default=32)
        self.levels = sorted({32, *used, *[s for s in strides if finest <= s <= 32]}, reverse=True)  # coarse to fine
        missing = [s for s in self.levels if s not in strides]
        if missing:
            raise ValueError(f"model.init_args.backbone: {backbone!r} gives strides {strides}, "
                             f"DIR needs {self.levels}")
        self.level_index = {s: strides.index(s) for s in self.levels}
        self.lateral = nn.ModuleDict({str(s): nn.Conv2d(self.backbone.out_channels[strides.index(s)], dim, 1)
                                      for s in self.levels})
        self.smooth = nn.ModuleDict({str(s): nn.Conv2d(dim, dim, 3, padding=1) for s in self.levels})
        self.attention = nn.Conv2d(dim, 2, 1)
        if keypoint_stride:
            self.keypoint_head = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.ReLU(inplace=True),
                                               nn.Conv2d(dim, 42, 1))
            # the initial estimate lifts each hand's 2D keypoints (wrist-relative, + the wrist) to its parameters
            self.init_head = _mlp(dim + 42 + 2, hidden, NUM_PARAMS)
        else:
            self.init_head = nn.Sequential(nn.Linear(dim, NUM_PARAMS))
        _init_head(self.init_head, 1)
        self.init_offset = nn.Sequential(nn.Linear(2 * dim, 3))
        nn.init.zeros_(self.init_offset[-1].weight)
        with torch.no_grad():
            self.init_offset[-1].bias.copy_(torch.tensor([-1.0, 0.0, 0.0]))  # left hand ~100 mm to the left
        self.blocks = nn.ModuleList(RefineBlock(dim, heads, bone_channels, splat_radius, hidden, patch,
                                                keypoints=bool(keypoint_stride), local_window=local_window,
                                                detach=detach_iterations)
                                    for _ in range(num_iterations))

    def pyramid(self, image: Tensor) -> dict[int, Tensor]:
        """Top-down fused maps ``{stride: (B, D, H/stride, W/stride)}``."""
        feats = self.backbone(image)
        out, prev = {}, None
        for s in self.levels:
            x = self.lateral[str(s)](feats[self.level_index[s]])
            if prev is not None:
                x = x + F.interpolate(prev, size=x.shape[-2:], mode="bilinear", align_corners=False)
            out[s] = prev = self.smooth[str(s)](x)
        return out

    def evidence_at(self, log_prob: Tensor | None, stride: int) -> Tensor | None:
        """Heatmap log-probabilities ``(B, 42, h, w)`` at ``stride``: the probabilities of the keypoint map summed
        over blocks of ``stride / keypoint_stride`` cells (unchanged at or below the keypoint stride)."""
        if log_prob is None or not self.keypoint_stride or stride <= self.keypoint_stride:
            return log_prob
        k = stride // self.keypoint_stride
        return (F.avg_pool2d(log_prob.exp(), k) * k * k).clamp_min(1e-12).log()

    def decode(self, params: Tensor, offset: Tensor) -> dict[str, Tensor]:
        """Hand parameters to joints.

        Args:
            params: ``(B, 2, 64)``; offset: ``(B, 3)`` right-to-left root offset in mm.

        Returns:
            ``rel (B, 42, 3)`` root-relative joints (mm), ``uv (B, 42, 2)`` normalised weak-perspective 2D,
            ``vertices (B, 2V, 3)`` root-relative (only with a mesh layer).
        """
        rels, uvs, verts = [], [], []
        for h, layer in enumerate(self.hand_layers):
            p = params[:, h]
            out = layer(rotation_6d_to_matrix(p[:, _SLICES["rot6d"]]), p[:, _SLICES["pose"]], p[:, _SLICES["betas"]])
            root = out.joints[:, ROOT : ROOT + 1]
            rel = out.joints - root
            cam = p[:, _SLICES["cam"]]
            s = _CAM_SCALE * torch.exp(cam[:, :1].clamp(-5, 5))
            uvs.append(s[:, None] * rel[..., :2] / 100 + cam[:, None, 1:])
            rels.append(rel)
            if out.vertices is not None:
                verts.append(out.vertices - root)
        res = {"rel": torch.cat(rels, 1), "uv": torch.cat(uvs, 1), "params": params, "offset": offset}
        if verts:
            res["vertices"] = torch.cat(verts, 1)
        return res

    def forward(self, image: Tensor) -> list[dict[str, Tensor]]:
        """Run the initial estimate and the refinement iterations.

        Args:
            image: ``(B, 3, H, W)`` in [0, 1].

        Returns:
            one dict per estimate (initial first) as returned by :meth:`decode`; with ``keypoint_stride`` each
            also holds ``heatmaps (B, 42, h, w)`` logits and ``keypoints (B, 42, 2)`` normalised 2D.
        """
        maps = self.pyramid(image)
        coarse = maps[32]
        attn = self.attention(coarse).flatten(2).softmax(-1)  # (B, 2, hw): one attention map per hand
        pooled = attn @ coarse.flatten(2).transpose(1, 2)  # (B, 2, D)
        extra: dict[str, Tensor] = {}
        keypoints = log_prob = None
        if self.keypoint_stride:
            heatmaps = self.keypoint_head(maps[self.keypoint_stride])  # (B, 42, h, w)
            keypoints = soft_argmax(heatmaps)
            extra = {"heatmaps": heatmaps, "keypoints": keypoints}
            log_prob = heatmaps.flatten(2).log_softmax(-1).reshape(heatmaps.shape)
            kp = keypoints.detach().reshape(-1, 2, 21, 2)
            wrist = kp[:, :, ROOT]
            lifted = torch.cat([pooled, 2 * (kp - wrist[:, :, None]).flatten(2), wrist], -1)
            params = self.init_head(lifted)
        else:
            params = self.init_head(pooled)  # (B, 2, 64)
        offset = 100 * self.init_offset(pooled.flatten(1))
        outs = [{**self.decode(params, offset), **extra}]
        fused = None
        for k, (block, s) in enumerate(zip(self.blocks, self.refine_strides)):
            fmap = maps[s]
            if fused is not None:
                fmap = fmap + F.interpolate(fused, size=fmap.shape[-2:], mode="bilinear", align_corners=False)
            start = outs[-1]
            if self.training and self.refine_noise > 0 and k > 0:
                params, offset = self.perturb(params, offset, outs[-2]["params"], outs[-2]["offset"])
                start = self.decode(params, offset)
            params, offset, fused = block(fmap, params, offset, start["rel"], start["uv"], keypoints,
                                          self.evidence_at(log_prob, s))
            outs.append({**self.decode(params, offset), **extra})
        return outs

    def perturb(self, params: Tensor, offset: Tensor, prev_params: Tensor, prev_offset: Tensor
                ) -> tuple[Tensor, Tensor]:
        """Training-time perturbation of an iteration's starting estimate (``refine_noise``).

        Each element moves by ``refine_noise * N(0, 1)`` times the previous iteration's (detached) update to it,
        so the perturbation has the scale and the support of the corrections an iteration makes.

        Args:
            params: ``(B, 2, 64)`` and offset ``(B, 3)``: the estimate handed to the iteration.
            prev_params, prev_offset: the estimate the previous iteration started from.

        Returns:
            the perturbed ``params`` and ``offset``.
        """
        dp, do = (params - prev_params).detach(), (offset - prev_offset).detach()
        return (params + self.refine_noise * torch.randn_like(dp) * dp,
                offset + self.refine_noise * torch.randn_like(do) * do)


def to_camera(rel: Tensor, uv: Tensor, offset: Tensor, params: Tensor, K: Tensor, image_size: tuple[int, int]
              ) -> tuple[Tensor, Tensor]:
    """Camera-space joints from the weak-perspective estimate and the intrinsics.

    The right root's depth follows from the weak-perspective scale (``Z = f / (pixels per mm)``) and its
    position from the root's 2D location; the left root is the right root plus the predicted offset.

    Args:
        rel: ``(B, 42, 3)`` root-relative joints (mm); uv ``(B, 42, 2)`` normalised 2D; offset ``(B, 3)``;
        params ``(B, 2, 64)``; K ``(B, 3, 3)``; image_size ``(H, W)`` of the network input.

    Returns:
        ``joints3d (B, 42, 3)`` camera space (mm) and ``joints2d (B, 42, 2)`` weak-perspective pixels.
    """
    H, W = image_size
    px = (uv + 1) * uv.new_tensor([W, H]) / 2
    cam = params[:, 0, _SLICES["cam"]]
    s = _CAM_SCALE * torch.exp(cam[:, 0].clamp(-5, 5))  # normalised units per 100 mm
    ppmm = s * W / 200  # pixels per mm at the right root
    f = K[:, 0, 0]
    Z = f / ppmm
    root_px = px[:, ROOT]
    X = (root_px[:, 0] - K[:, 0, 2]) * Z / f
    Y = (root_px[:, 1] - K[:, 1, 2]) * Z / K[:, 1, 1]
    right_root = torch.stack([X, Y, Z], -1)
    roots = torch.stack([right_root, right_root + offset], 1)  # (B, 2, 3)
    joints3d = (rel.reshape(-1, 2, 21, 3) + roots[:, :, None]).reshape(-1, 42, 3)
    return joints3d, px


__all__ = ["DIRNet", "GraphConv", "RefineBlock", "bone_splat", "local_evidence", "root_relative", "soft_argmax",
           "to_camera"]
