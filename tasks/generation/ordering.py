"""Decoding orders of a token grid: raster (one token per pass) and neighboring (one anti-diagonal per pass).

The whole difference between a raster and a neighboring-autoregressive (NAR) model lives in an
:class:`Ordering`: which tokens are decoded together (groups), who may attend to whom (mask) and which
hidden states, through which output heads, predict each token (predictor table). The transformer and the
generation loop only read these tensors.

Sequence layout (shared by every ordering): index 0 is the class prefix, index ``1 + t`` is token ``t`` of the
grid flattened in raster (row-major) order. Grid coordinates are ``(i, j)`` for images and ``(t, i, j)`` for
volumes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["Ordering", "make_ordering"]


class Ordering:
    """Groups, attention mask and predictor table of one decoding order over a grid of tokens.

    ``kind="raster"`` decodes token ``t`` at step ``t`` with a single head: the hidden state of the previous
    token (the prefix for ``t = 0``) predicts it. ``kind="nar"`` decodes all tokens at Manhattan distance ``c``
    from the origin at step ``c`` with one head per grid axis: head ``a`` at token ``x`` predicts ``x + e_a``
    (head 0 = last axis = horizontal, head 1 = vertical, head 2 = depth/time). A token's logits are the mean of
    its available predictors' logits; the origin is predicted by every head at the prefix.

    Args:
        shape: grid shape ``(h, w)`` or ``(d, h, w)``.
        kind: ``"raster"`` or ``"nar"``.

    Attributes:
        coords: ``(N, D)`` long grid coordinates of the tokens in raster order.
        group: ``(N,)`` long decoding step of every token (``t`` for raster, ``sum(coords)`` for NAR).
        num_groups: number of generation passes (``N`` for raster, ``sum(shape) - D + 1`` for NAR).
        num_heads: output heads (1 for raster, ``D`` for NAR).
        pred_index: ``(N, num_heads)`` long sequence index of the predictor of each token through each head
            (0 = prefix; entries with ``pred_valid == False`` point at 0 and are ignored).
        pred_valid: ``(N, num_heads)`` bool.
        group_tokens: list of ``num_groups`` long tensors: the token indices decoded at each step.
    """

    def __init__(self, shape: tuple[int, ...], kind: str = "nar") -> None:
        shape = tuple(int(s) for s in shape)
        if kind not in ("raster", "nar"):
            raise ValueError(f"ordering: expected 'raster' or 'nar', got {kind!r}")
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise ValueError(f"ordering: grid shape must be (h, w) or (d, h, w) with positive sizes, got {shape}")
        self.shape = shape
        self.kind = kind
        self.num_tokens = math.prod(shape)
        grids = torch.meshgrid(*[torch.arange(s) for s in shape], indexing="ij")
        self.coords = torch.stack([g.reshape(-1) for g in grids], dim=1)  # (N, D)
        n, ndim = self.num_tokens, len(shape)
        if kind == "raster":
            self.group = torch.arange(n)
            self.num_heads = 1
            self.pred_index = torch.arange(n).unsqueeze(1)  # token t <- hidden at seq index t (= token t-1)
            self.pred_valid = torch.ones(n, 1, dtype=torch.bool)
        else:
            self.group = self.coords.sum(dim=1)
            self.num_heads = ndim
            strides = torch.tensor([math.prod(shape[a + 1:]) for a in range(ndim)])
            # head a reads the neighbour one step back along axis (ndim - 1 - a): head 0 = last axis
            axes = torch.arange(ndim - 1, -1, -1)
            back = self.coords[:, axes]  # (N, A) coordinate along each head's axis
            self.pred_valid = back > 0
            flat = torch.arange(n).unsqueeze(1) - strides[axes].unsqueeze(0)  # (N, A) token index of x - e_a
            self.pred_index = torch.where(self.pred_valid, flat + 1, torch.zeros_like(flat))
            origin = self.group == 0
            self.pred_valid[origin] = True  # the origin is predicted by every head at the prefix (index 0)
        self.num_groups = int(self.group.max()) + 1
        order = torch.argsort(self.group * n + torch.arange(n))
        counts = torch.bincount(self.group, minlength=self.num_groups).tolist()
        self.group_tokens = list(torch.split(order, counts))

    # ------------------------------------------------------------------ sequence view
    @property
    def seq_len(self) -> int:
        """Prefix + tokens."""
        return 1 + self.num_tokens

    def seq_group(self) -> Tensor:
        """``(L,)`` group of every sequence position; the prefix has group -1 (visible to all)."""
        return torch.cat([torch.tensor([-1]), self.group])

    def seq_coords(self) -> Tensor:
        """``(L, D)`` grid coordinates per sequence position; the prefix gets zeros (identity rotation)."""
        return torch.cat([torch.zeros(1, self.coords.shape[1], dtype=torch.long), self.coords])

    def attention_mask(self) -> Tensor:
        """``(L, L)`` bool, True where query ``q`` may attend key ``k``: ``group(k) <= group(q)``."""
        g = self.seq_group()
        return g.unsqueeze(0) <= g.unsqueeze(1)

    def pred_weight(self) -> Tensor:
        """``(N, num_heads)`` float weights that average the valid predictors of each token."""
        w = self.pred_valid.float()
        return w / w.sum(dim=1, keepdim=True)

    def fed_positions(self, step: int) -> Tensor:
        """Sequence indices fed to the model at generation ``step`` (the prefix, then the previous group)."""
        if step == 0:
            return torch.zeros(1, dtype=torch.long)
        return self.group_tokens[step - 1] + 1

    def __repr__(self) -> str:
        return f"Ordering(kind={self.kind!r}, shape={self.shape}, passes={self.num_groups})"


def make_ordering(kind: str, shape: tuple[int, ...]) -> Ordering:
    """Build an :class:`Ordering` (``kind`` in ``raster``/``nar``) for a grid ``shape``."""
    return Ordering(shape, kind)
