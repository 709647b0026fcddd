"""Frame averaging (Puny et al., 2022) with PCA frames: exact rotation invariance for any backbone.

For a cloud ``X`` with centroid ``t`` and covariance eigenvectors ``v1, v2, v3`` (descending eigenvalues), the
frames are ``F = [s1 v1, s2 v2, (s1 v1) × (s2 v2)]`` for the 4 sign choices (SO(3)), or ``[s1 v1, s2 v2, s3 v3]``
for the 8 sign choices (O(3)). The output is the mean of the backbone over the canonical inputs ``(X - t) F``.
Rotating ``X`` by ``R`` maps each ``v`` to ``±R v``, so the set of canonical inputs, hence the mean, is
unchanged: the model is invariant (per point: equivariant for segmentation) whenever the eigenvalues are
distinct.
"""

from __future__ import annotations

from torch import Tensor, nn

from visionkit.ops.points import pca_frame_candidates, pca_frames
from visionkit.ops.precision import float32_ops


class FrameAveraged(nn.Module):
    """Wraps a point-cloud backbone ``f(points (B, N, 3), category) -> (B, C) | (B, N, C)``.

    The ``K`` frames of a batch are evaluated as one batch of ``B·K`` clouds. Frames are computed without
    gradient (the frame is a function of the input, not a learned quantity).

    Args:
        backbone: any module with the signature above.
        group: ``"so3"`` (4 frames, rotations) or ``"o3"`` (8 frames, rotations and reflections).
    """

    def __init__(self, backbone: nn.Module, group: str = "so3") -> None:
        super().__init__()
        if group not in ("so3", "o3"):
            raise ValueError(f"group must be 'so3' or 'o3', got {group!r}")
        self.backbone = backbone
        self.group = group

    @float32_ops
    def canonical_inputs(self, points: Tensor) -> Tensor:
        """``(B, N, 3)`` -> ``(B, K, N, 3)`` canonical copies ``(X - t) F_k`` (float32 under autocast)."""
        t, _, evecs = pca_frames(points.detach())
        frames = pca_frame_candidates(evecs, self.group)  # (B, K, 3, 3), axes as columns
        return (points - t[:, None])[:, None] @ frames

    def forward(self, points: Tensor, category: Tensor | None = None) -> Tensor:
        B, N, _ = points.shape
        x = self.canonical_inputs(points)
        K = x.shape[1]
        cat = category.repeat_interleave(K, 0) if category is not None else None
        out = self.backbone(x.reshape(B * K, N, 3), cat)
        return out.reshape(B, K, *out.shape[1:]).mean(1)
