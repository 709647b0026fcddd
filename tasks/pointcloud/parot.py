"""PaRot (Zhang et al., 2023): patch-wise rotation-invariant network by disentanglement and pose restoration.

Pipeline, for a cloud ``X (B, N, 3)``:

1. Patches at two scales around ``M`` FPS centres ``c_i``: local patches = the ``k`` nearest points in local
   coordinates ``x - c_i``; global patches = ``G`` FPS points of the whole cloud taken relative to ``c_i``.
2. Per scale, a siamese disentanglement net (shared PointNet encoder, an invariant head, two direction heads)
   maps a patch to an invariant feature ``f`` and a frame ``O = [d1; d2; d1 × d2]`` (rows). In training each
   patch is rotated by two random rotations ``R1, R2``; the predicted directions are rotated back ("pose
   restoration") and must agree (direction consistency) and be orthogonal.
3. Rotation-invariant relative pose between neighbouring patches ``i, j`` with ``r = c_j - c_i``:
   ``O_j O_iᵀ`` (9), ``O_i r̂``, ``O_j r̂`` (3 + 3), ``‖r‖`` (1): a 16-d code, aggregated with ``f_j`` and
   ``f_j - f_i`` by an MLP and a max over neighbours (intra-scale); the inter-scale code ``O_g O_lᵀ`` links the
   local and the global frame of a centre.
4. An encoder to ``emb_dim``, max-pool, MLP classifier; for segmentation, pose-aware propagation to every
   point from its nearest centres with the code ``[‖r‖, O_l r̂, O_g r̂]`` and the one-hot category.

All codes are invariant when the frames are equivariant (``O(XRᵀ) = O(X) Rᵀ``); the network learns that
equivariance through the consistency losses. Patches are seen under random rotations (seeded at inference)
followed by pose restoration, in training and at inference alike, so the distribution of the output does not
depend on the pose of the cloud; a single prediction is invariant up to how well equivariance was learned.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from visionkit.ops.points import farthest_point_sampling, gather_points, group_points, knn
from visionkit.ops.precision import float32_ops
from visionkit.ops.rotations import random_rotation
from visionkit.tasks.pointcloud.pointnet import SharedMLP, mlp_head, one_hot_category, point_mlp

# products of frames, rotations and directions: float32 under autocast (bfloat16 frames are orthogonal to ~1e-2)
_matmul = float32_ops(torch.matmul)


def _mlp(channels: Sequence[int]) -> SharedMLP:
    """Linear + BatchNorm + ReLU blocks on ``(..., C)`` (BatchNorm over all leading dims)."""
    return SharedMLP(channels)


@float32_ops
def frame_from_directions(d1: Tensor, d2: Tensor) -> Tensor:
    """Rotation ``(..., 3, 3)`` with rows ``[e1; e2; e1 × e2]``: ``d1`` normalised, ``d2`` made orthogonal to it."""
    e1 = F.normalize(d1, dim=-1, eps=1e-8)
    e2 = F.normalize(d2 - (d2 * e1).sum(-1, keepdim=True) * e1, dim=-1, eps=1e-8)
    return torch.stack([e1, e2, torch.linalg.cross(e1, e2, dim=-1)], dim=-2)


class DisentangleNet(nn.Module):
    """One scale of the siamese disentanglement module.

    Args:
        widths: shared PointNet encoder (3 -> widths, max-pool).
        inv_dim: width of the invariant head (2 × Linear + BN + ReLU).

    Shapes:
        ``forward(patches (P, k, 3)) -> (f (P, inv_dim), d1 (P, 3), d2 (P, 3))`` with unit ``d1, d2``.
    """

    def __init__(self, widths: Sequence[int] = (64, 128, 128), inv_dim: int = 128) -> None:
        super().__init__()
        self.encoder = point_mlp([3, *widths])
        self.inv = _mlp([widths[-1], inv_dim, inv_dim])
        self.dir1 = nn.Sequential(nn.Linear(widths[-1], 64), nn.ReLU(inplace=True), nn.Linear(64, 3))
        self.dir2 = nn.Sequential(nn.Linear(widths[-1], 64), nn.ReLU(inplace=True), nn.Linear(64, 3))
        self.out_dim = inv_dim

    def forward(self, patches: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.encoder(patches).amax(1)  # (P, C)
        return self.inv(h), F.normalize(self.dir1(h), dim=-1, eps=1e-8), F.normalize(self.dir2(h), dim=-1, eps=1e-8)

    def disentangle(self, patches: Tensor, siamese: bool, generator: torch.Generator | None = None,
                    per_cloud: int | None = None) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Invariant features ``(P, C)``, frames ``(P, 3, 3)`` restored to the patch's own pose, and the losses.

        Every patch is seen under a random rotation ``R`` (from ``generator`` when given) and its directions are
        restored with ``d @ R`` (the inverse of ``d @ Rᵀ``). With ``siamese`` a second rotation gives the second
        branch, whose restored directions must agree with the first; branch 1 provides features and frame.
        With ``per_cloud`` (patches of one cloud, stored cloud by cloud) the rotations are drawn for one cloud
        and reused for every cloud, so a cloud's result does not depend on the rest of the batch.
        """
        P = patches.shape[0]
        n = 2 if siamese else 1
        if per_cloud:
            R = random_rotation(n * per_cloud, generator=generator, dtype=patches.dtype).reshape(n, 1, per_cloud, 3, 3)
            R = R.expand(n, P // per_cloud, per_cloud, 3, 3).reshape(n, P, 3, 3).to(patches.device)
        else:
            R = random_rotation(n * P, generator=generator, dtype=patches.dtype).to(patches.device).reshape(n, P, 3, 3)
        f, d1, d2 = self(_matmul(patches[None], R.transpose(-1, -2)).reshape(n * P, -1, 3))
        d1 = _matmul(d1.reshape(n, P, 1, 3), R).squeeze(2)  # restored to the patch's own pose
        d2 = _matmul(d2.reshape(n, P, 1, 3), R).squeeze(2)
        losses = {}
        if siamese:
            losses = {
                "consistency": F.mse_loss(d1[0], d1[1]) + F.mse_loss(d2[0], d2[1]),
                "orthogonality": ((d1 * d2).sum(-1) ** 2).mean(),
            }
        return f[:P], frame_from_directions(d1[0], d2[0]), losses


@float32_ops
def relative_pose_code(O_i: Tensor, O_j: Tensor, r: Tensor) -> Tensor:
    """The 16-d invariant code ``[O_j O_iᵀ (9), O_i r̂ (3), O_j r̂ (3), ‖r‖ (1)]``.

    Args:
        O_i: ``(..., 3, 3)`` frames (rows) of the centres, broadcast against ``O_j``.
        O_j: ``(..., 3, 3)`` frames of the neighbours.
        r: ``(..., 3)`` offsets ``c_j - c_i``.
    """
    n = r.norm(dim=-1, keepdim=True)
    rh = r / n.clamp_min(1e-8)
    rel = O_j @ O_i.transpose(-1, -2)
    return torch.cat([rel.flatten(-2), (O_i @ rh[..., None]).squeeze(-1), (O_j @ rh[..., None]).squeeze(-1), n], -1)


class PaRot(nn.Module):
    """PaRot classifier or part segmenter.

    Args:
        num_classes: classes (classification) or parts (segmentation).
        num_centres: ``M`` FPS centres of the patches (paper: 256).
        local_k: points per local patch (paper: 64).
        global_points: FPS points of the global patches (paper: 32 classification, 64 segmentation).
        relation_k: neighbouring patches of the relative-pose aggregation (paper: 32 classification, 16 seg).
        encoder_widths: disentanglement encoder widths (paper: 64, 128, 128).
        feat_dim: invariant feature size per patch.
        agg_dim: width of the intra-scale aggregation MLP.
        emb_dim: width of the encoder before the max-pool (paper: 1024).
        head: hidden sizes of the classifier.
        dropout: classifier dropout (paper: 0.5).
        segmentation: per-point part logits.
        num_categories: one-hot categories of the segmentation head.
        propagate_k: nearest centres of each point in feature propagation (paper: 11).
        seg_dim: width of the propagation and segmentation MLPs.
        eval_seed: seed of the patch rotations at inference (reproducible predictions).

    Shapes:
        ``forward(points (B, N, 3), category (B,) | None) -> (B, C) | (B, N, C)``;
        :meth:`forward_train` also returns the disentanglement losses.
    """

    def __init__(self, num_classes: int, num_centres: int = 256, local_k: int = 64, global_points: int = 32,
                 relation_k: int = 32, encoder_widths: Sequence[int] = (64, 128, 128), feat_dim: int = 128,
                 agg_dim: int = 128, emb_dim: int = 1024, head: Sequence[int] = (512, 256), dropout: float = 0.5,
                 segmentation: bool = False, num_categories: int = 0, propagate_k: int = 11,
                 seg_dim: int = 128, eval_seed: int = 0) -> None:
        super().__init__()
        self.eval_seed = eval_seed
        self.M, self.k, self.G, self.kr = num_centres, local_k, global_points, relation_k
        self.segmentation, self.num_categories, self.kp = segmentation, num_categories, propagate_k
        self.local_net = DisentangleNet(encoder_widths, feat_dim)
        self.global_net = DisentangleNet(encoder_widths, feat_dim)
        self.local_agg = _mlp([16 + 2 * feat_dim, agg_dim, agg_dim])
        self.global_agg = _mlp([16 + 2 * feat_dim, agg_dim, agg_dim])
        centre_dim = 2 * agg_dim + 9
        self.encoder = _mlp([centre_dim, 256, emb_dim])
        if segmentation:
            self.propagate = _mlp([7 + centre_dim + emb_dim, seg_dim, seg_dim])
            cin = seg_dim + emb_dim + num_categories
            self.seg = nn.Sequential(point_mlp([cin, seg_dim, seg_dim]), nn.Dropout(dropout),
                                     nn.Linear(seg_dim, num_classes))
        else:
            self.head = mlp_head([emb_dim, *head], num_classes, dropout)

    def _aggregate(self, agg: nn.Module, f: Tensor, O: Tensor, centres: Tensor, nidx: Tensor) -> Tensor:
        """Intra-scale aggregation ``(B, M, C)`` over the ``relation_k`` neighbouring patches."""
        f_j = gather_points(f, nidx)  # (B, M, kr, C)
        O_j = gather_points(O.flatten(-2), nidx).unflatten(-1, (3, 3))  # (B, M, kr, 3, 3)
        r = gather_points(centres, nidx) - centres[:, :, None]
        code = relative_pose_code(O[:, :, None], O_j, r)  # (B, M, kr, 16)
        h = torch.cat([code, f_j, f_j - f[:, :, None]], -1)
        return agg(h).amax(2)

    def forward_train(self, points: Tensor, category: Tensor | None = None,
                      siamese: bool = True) -> tuple[Tensor, dict[str, Tensor]]:
        """Logits and the disentanglement losses (``local_*``, ``global_*``)."""
        B, N, _ = points.shape
        M, k, G = min(self.M, N), min(self.k, N), min(self.G, N)
        cidx = farthest_point_sampling(points, M, start="centroid")
        centres = gather_points(points, cidx)  # (B, M, 3)
        _, lidx = knn(centres, points, k)
        local = group_points(points, centres, lidx)  # (B, M, k, 3)
        gpts = gather_points(points, farthest_point_sampling(points, G, start="centroid"))  # (B, G, 3)
        glob = gpts[:, None] - centres[:, :, None]  # (B, M, G, 3)
        # inference sees the patches under seeded random rotations, exactly as training does: with Haar
        # rotations restored afterwards the distribution of every code is the same for any pose of the cloud
        g = None if siamese else torch.Generator().manual_seed(self.eval_seed)
        per = None if siamese else M
        f_l, O_l, loss_l = self.local_net.disentangle(local.reshape(B * M, k, 3), siamese, g, per)
        f_g, O_g, loss_g = self.global_net.disentangle(glob.reshape(B * M, G, 3), siamese, g, per)
        f_l, f_g = f_l.reshape(B, M, -1), f_g.reshape(B, M, -1)
        O_l, O_g = O_l.reshape(B, M, 3, 3), O_g.reshape(B, M, 3, 3)
        _, nidx = knn(centres, centres, min(self.kr, M))
        h_l = self._aggregate(self.local_agg, f_l, O_l, centres, nidx)
        h_g = self._aggregate(self.global_agg, f_g, O_g, centres, nidx)
        inter = _matmul(O_g, O_l.transpose(-1, -2)).flatten(-2)  # (B, M, 9)
        h = torch.cat([h_l, h_g, inter], -1)  # (B, M, centre_dim)
        emb = self.encoder(h).amax(1)  # (B, E)
        losses = {f"local_{n}": v for n, v in loss_l.items()} | {f"global_{n}": v for n, v in loss_g.items()}
        if not self.segmentation:
            return self.head(emb), losses
        # pose-aware propagation from the kp nearest centres of every point
        kp = min(self.kp, M)
        _, pidx = knn(points, centres, kp)  # (B, N, kp)
        r = points[:, :, None] - gather_points(centres, pidx)  # (B, N, kp, 3)
        n = r.norm(dim=-1, keepdim=True)
        rh = (r / n.clamp_min(1e-8))[..., None]
        Ol = gather_points(O_l.flatten(-2), pidx).unflatten(-1, (3, 3))
        Og = gather_points(O_g.flatten(-2), pidx).unflatten(-1, (3, 3))
        code = torch.cat([n, _matmul(Ol, rh).squeeze(-1), _matmul(Og, rh).squeeze(-1)], -1)  # (B, N, kp, 7)
        hc = gather_points(h, pidx)
        e = emb[:, None, None].expand(B, N, kp, -1)
        p = self.propagate(torch.cat([code, hc, e], -1)).amax(2)  # (B, N, seg_dim)
        parts = [p, emb[:, None].expand(-1, N, -1)]
        if self.num_categories:
            parts.append(one_hot_category(category, self.num_categories, points)[:, None].expand(-1, N, -1))
        return self.seg(torch.cat(parts, -1)), losses

    def forward(self, points: Tensor, category: Tensor | None = None) -> Tensor:
        return self.forward_train(points, category, siamese=False)[0]
