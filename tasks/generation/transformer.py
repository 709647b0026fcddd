"""Class-conditional autoregressive transformer over token grids, for raster and neighboring orders.

One trunk (pre-norm transformer blocks, 2D/3D rotary position embedding, class prefix) serves both orders;
the :class:`~visionkit.tasks.generation.ordering.Ordering` supplies the attention mask, the output heads and
which hidden states predict which token. Generation decodes one group per pass with a key/value cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from visionkit.tasks.generation.ordering import Ordering

__all__ = ["ARTransformer", "rope_angles", "apply_rope", "sample_logits"]


def rope_angles(coords: Tensor, head_dim: int, base: float = 100.0) -> Tensor:
    """Rotary angles for multi-axis positions.

    The ``head_dim / 2`` rotation frequencies are split evenly over the ``D`` axes (leftover frequencies get
    angle 0); axis ``a`` contributes ``coords[:, a] * base ** (-f / F)`` for ``f < F``.

    Args:
        coords: ``(L, D)`` integer positions (row, column[, ...]); all-zero rows get the identity rotation.
        head_dim: attention head width (even).
        base: frequency base (grids are small, so a small base spreads the angles).

    Returns:
        ``(L, head_dim / 2)`` angles in radians.
    """
    if head_dim % 2:
        raise ValueError(f"head_dim must be even for rotary embedding, got {head_dim}")
    L, D = coords.shape
    half = head_dim // 2
    per = half // D
    freqs = base ** (-torch.arange(per, dtype=torch.float64) / max(per, 1))  # (per,)
    ang = coords.double().unsqueeze(-1) * freqs  # (L, D, per)
    ang = ang.reshape(L, D * per)
    if D * per < half:
        ang = torch.cat([ang, ang.new_zeros(L, half - D * per)], dim=1)
    return ang.float()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x (B, H, L, hd)`` pairwise ``(x[f], x[f + hd/2])`` by angles with ``cos, sin (L, hd/2)``."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def _rope_into(x: Tensor, cos: Tensor, sin: Tensor, out: Tensor) -> Tensor:
    """``out[:] = apply_rope(x, cos, sin)`` with the same arithmetic, written in place (no concatenation).

    ``x`` and ``out`` share a shape ``(..., hd)`` (any strides, no overlap); ``cos, sin`` broadcast to
    ``(..., hd/2)``.
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    o1, o2 = out[..., :half], out[..., half:]
    torch.mul(x1, cos, out=o1)
    o1.sub_(x2 * sin)
    torch.mul(x2, cos, out=o2)
    o2.add_(x1 * sin)  # x2 cos + x1 sin == x1 sin + x2 cos exactly (addition commutes)
    return out


@dataclass
class KVCache:
    """Pre-allocated keys/values of one attention layer: ``(B, H, L_max, hd)``; ``n`` positions are filled."""

    k: Tensor
    v: Tensor
    n: int = 0

    def slots(self, m: int) -> tuple[Tensor, Tensor]:
        """The next ``m`` free positions of keys and values as ``(B, m, H, hd)`` views, to be written in place."""
        return self.k[:, :, self.n:self.n + m].transpose(1, 2), self.v[:, :, self.n:self.n + m].transpose(1, 2)

    def advance(self, m: int) -> tuple[Tensor, Tensor]:
        """Mark ``m`` written positions filled; return all filled keys and values ``(B, H, n, hd)``."""
        self.n += m
        return self.k[:, :, :self.n], self.v[:, :, :self.n]


@dataclass
class _HeadPlan:
    """How one output head contributes to one generation pass (None = identity / all / unit weights).

    ``query``: rows of the fed group its extra block computes (keys/values come from all rows); ``rows``: the
    row of the head's hidden states read by each predicted target; ``targets``: positions in the decoded group
    of those targets; ``weight (n_sel, 1)``: their mean-of-predictors weights.
    """

    targets: Tensor | None
    rows: Tensor | None
    query: Tensor | None
    weight: Tensor | None

    def to(self, device: torch.device) -> _HeadPlan:
        return _HeadPlan(*(None if t is None else t.to(device) for t in (self.targets, self.rows, self.query,
                                                                          self.weight)))


@dataclass
class _Pass:
    """One generation pass: fed sequence positions, decoded tokens (raster index), their rotary angles."""

    pos: Tensor
    targets: Tensor
    cos: Tensor
    sin: Tensor
    heads: list[_HeadPlan]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None = None,
                cache: KVCache | None = None, query: Tensor | None = None) -> Tensor:
        """Self-attention of ``x (B, L, C)``; with ``query (Lq,)`` only those rows attend (all give keys/values).

        With a ``cache``, the keys/values of ``x`` are appended to it and the queries attend to everything it
        holds (no mask: generation feeds whole groups).

        Returns ``(B, L, C)``, or ``(B, Lq, C)`` when ``query`` is given.
        """
        if cache is not None:
            if mask is not None:
                raise ValueError("Attention: a mask cannot be combined with a cache (generation feeds whole groups)")
            return self._decode(x, cos, sin, cache, query)
        B, L, C = x.shape
        H, hd = self.heads, self.head_dim
        if query is None:
            q, k, v = self.qkv(x).view(B, L, 3, H, hd).permute(2, 0, 3, 1, 4)  # (B, H, L, hd)
            qcos, qsin = cos, sin
        else:
            # keys/values of every row, queries of the asked rows only
            w, b = self.qkv.weight, self.qkv.bias
            k, v = F.linear(x, w[C:], b[C:]).view(B, L, 2, H, hd).permute(2, 0, 3, 1, 4)  # (B, H, L, hd)
            q = F.linear(x[:, query], w[:C], b[:C]).view(B, -1, H, hd).transpose(1, 2)  # (B, H, Lq, hd)
            qcos, qsin = cos[query], sin[query]
            if mask is not None:
                mask = mask[query]
        q, k = apply_rope(q, qcos, qsin), apply_rope(k, cos, sin)
        Lq = q.shape[2]
        if Lq == 0:
            return x.new_zeros(B, 0, C)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.proj(out.transpose(1, 2).reshape(B, Lq, C))

    def _decode(self, x: Tensor, cos: Tensor, sin: Tensor, cache: KVCache, query: Tensor | None) -> Tensor:
        """Generation step of :meth:`forward`: rotated keys and values go straight into the cache's free slots
        (no intermediate layout copies); queries and keys of the same rows are rotated in one go."""
        B, L, C = x.shape
        H, hd = self.heads, self.head_dim
        k_slot, v_slot = cache.slots(L)  # (B, L, H, hd) views into the cache
        cos4, sin4 = cos.view(L, 1, 1, -1), sin.view(L, 1, 1, -1)
        w, b = self.qkv.weight, self.qkv.bias
        if query is None:
            qkv = F.linear(x, w, b).view(B, L, 3, H, hd)
            qk = _rope_into(qkv[:, :, :2], cos4, sin4, x.new_empty(B, L, 2, H, hd))  # rotated q and k
            k_slot.copy_(qk[:, :, 1])
            v_slot.copy_(qkv[:, :, 2])
            q = qk[:, :, 0].transpose(1, 2)  # (B, H, L, hd)
        else:
            # keys/values of every row (later queries read them from the cache), queries of the asked rows only
            kv = F.linear(x, w[C:], b[C:]).view(B, L, 2, H, hd)
            _rope_into(kv[:, :, 0], cos4[:, 0], sin4[:, 0], k_slot)
            v_slot.copy_(kv[:, :, 1])
            Lq = query.shape[0]
            qr = F.linear(x[:, query], w[:C], b[:C]).view(B, Lq, H, hd)
            q = _rope_into(qr, cos4[query, 0], sin4[query, 0], torch.empty_like(qr)).transpose(1, 2)  # (B, H, Lq, hd)
        k, v = cache.advance(L)
        Lq = q.shape[2]
        if Lq == 0:
            return x.new_zeros(B, 0, C)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return self.proj(out.transpose(1, 2).reshape(B, Lq, C))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))``, ``x + mlp(ln(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None = None,
                cache: KVCache | None = None, query: Tensor | None = None) -> Tensor:
        """``x (B, L, C)`` -> ``(B, L, C)``; with ``query (Lq,)`` only those rows are computed -> ``(B, Lq, C)``.

        Every row of ``x`` still contributes keys/values (to ``cache`` when given).
        """
        res = x if query is None else x[:, query]
        x = res + self.attn(self.norm1(x), cos, sin, mask, cache, query)
        return x + self.mlp(self.norm2(x))


def sample_logits(logits: Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                  generator: torch.Generator | None = None) -> Tensor:
    """Sample token ids from ``logits (..., V)`` with temperature, top-k and nucleus (top-p) filtering.

    ``temperature == 0`` takes the arg-max. Returns ``(...)`` long.
    """
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits.float()
    if temperature != 1.0:  # dividing by 1 is exact: skip the copy
        logits = logits / temperature
    V = logits.shape[-1]
    if 0 < top_k < V:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_l, idx = logits.sort(dim=-1, descending=True)
        probs = sorted_l.softmax(-1)
        # drop a token when the mass of the tokens ranked above it already reaches top_p (the first always stays)
        drop = (probs.cumsum(-1) - probs) >= top_p
        sorted_l = sorted_l.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, idx, sorted_l)
    # inverse-CDF sampling: one uniform number per token (tokens filtered to -inf have zero-width intervals)
    cdf = logits.softmax(-1).reshape(-1, V).double().cumsum(-1)  # (T, V), double: u * total < total exactly
    u = torch.rand(cdf.shape[0], 1, generator=generator, device=cdf.device, dtype=torch.float32)
    idx = torch.searchsorted(cdf, u.double() * cdf[:, -1:], right=True)  # (T, 1) first bin with cdf > u
    return idx.clamp_(max=V - 1).view(logits.shape[:-1])


class ARTransformer(nn.Module):
    """Class-conditional autoregressive transformer whose decoding order is an :class:`Ordering`.

    Head 0 is ``LayerNorm + Linear`` on the trunk; every further head (NAR's vertical, and depth for volumes)
    is one extra transformer block on the trunk output + ``LayerNorm + Linear``. The logits of a token are the
    mean over its predictors (see :class:`Ordering`).

    Args:
        ordering: decoding order and grid shape.
        vocab_size: number of token ids.
        num_classes: number of class labels; id ``num_classes`` is the null label (classifier-free guidance).
        dim: model width.
        depth: trunk blocks.
        heads: attention heads.
        mlp_ratio: MLP hidden width / dim.
        dropout: dropout in attention and MLP (training only).
        rope_base: rotary frequency base.
    """

    def __init__(self, ordering: Ordering, vocab_size: int, num_classes: int, dim: int = 128, depth: int = 4,
                 heads: int = 4, mlp_ratio: float = 4.0, dropout: float = 0.0, rope_base: float = 100.0) -> None:
        super().__init__()
        self.ordering = ordering
        self.vocab_size = vocab_size
        self.num_classes = num_classes
        self.null_label = num_classes
        self.dim, self.heads = dim, heads
        self.tok_emb = nn.Embedding(vocab_size, dim)
        self.cls_emb = nn.Embedding(num_classes + 1, dim)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio, dropout) for _ in range(depth)])
        A = ordering.num_heads
        self.extra_blocks = nn.ModuleList([Block(dim, heads, mlp_ratio, dropout) for _ in range(A - 1)])
        self.head_norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(A)])
        self.head_linears = nn.ModuleList([nn.Linear(dim, vocab_size) for _ in range(A)])
        ang = rope_angles(ordering.seq_coords(), dim // heads, rope_base)  # (L, hd/2)
        self.register_buffer("rope_cos", ang.cos(), persistent=False)
        self.register_buffer("rope_sin", ang.sin(), persistent=False)
        self.register_buffer("mask", ordering.attention_mask(), persistent=False)
        self.register_buffer("pred_index", ordering.pred_index, persistent=False)
        self.register_buffer("pred_weight", ordering.pred_weight(), persistent=False)
        self._plans: dict[torch.device, list[_Pass]] = {}
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.trunc_normal_(m.weight, std=0.02)

    # ------------------------------------------------------------------ training / scoring
    def head_logits(self, a: int, h: Tensor) -> Tensor:
        """Logits ``(..., V)`` of head ``a`` from its hidden states ``h (..., dim)``."""
        return self.head_linears[a](self.head_norms[a](h))

    def forward(self, tokens: Tensor, labels: Tensor) -> Tensor:
        """Teacher-forced logits of every token, one masked pass over the full sequence.

        Args:
            tokens: ``(B, *grid)`` long token ids.
            labels: ``(B,)`` long class ids (``num_classes`` = null label).

        Returns:
            ``(B, N, V)`` mixed (mean-of-predictors) logits, tokens in raster order.
        """
        B = tokens.shape[0]
        x = torch.cat([self.cls_emb(labels).unsqueeze(1), self.tok_emb(tokens.reshape(B, -1))], dim=1)  # (B, L, C)
        cos, sin, mask = self.rope_cos, self.rope_sin, self.mask
        for blk in self.blocks:
            x = blk(x, cos, sin, mask)
        out = 0.0
        for a in range(self.ordering.num_heads):
            h = x if a == 0 else self.extra_blocks[a - 1](x, cos, sin, mask)
            h = h[:, self.pred_index[:, a]]  # (B, N, C): predictor hidden state of every target
            out = out + self.pred_weight[:, a, None] * self.head_logits(a, h)
        return out

    # ------------------------------------------------------------------ generation
    def _plan(self, device: torch.device) -> list[_Pass]:
        """Index tensors of every generation pass (built once per device; see :class:`_Pass`)."""
        if device not in self._plans:
            o = self.ordering
            weight = o.pred_weight()  # (N, A)
            plan = []
            for step in range(o.num_groups):
                pos = o.fed_positions(step)
                targets = o.group_tokens[step]
                inv = torch.full((o.seq_len,), -1, dtype=torch.long)
                inv[pos] = torch.arange(len(pos))
                heads = []
                for a in range(o.num_heads):
                    valid = o.pred_valid[targets, a]  # (n_t,)
                    t_sel = valid.nonzero().view(-1)  # targets this head predicts
                    local = inv[o.pred_index[targets[t_sel], a]]  # their predictors among the fed tokens
                    if bool((local < 0).any()):
                        raise RuntimeError(f"{o}: a predictor of step {step} is not in the group fed at that step")
                    w = weight[targets[t_sel], a]
                    if a == 0:  # the trunk runs on every fed token anyway: gather from its output
                        query, rows = None, local
                    else:  # the extra block computes only the rows this head reads
                        query, rows = torch.unique(local, return_inverse=True)
                        if torch.equal(query, torch.arange(len(pos))):
                            query = None
                    heads.append(_HeadPlan(
                        targets=None if bool(valid.all()) else t_sel,
                        rows=None if torch.equal(rows, torch.arange(len(pos))) else rows,
                        query=query,
                        weight=None if bool((w == 1).all()) else w.view(-1, 1),
                    ).to(device))
                plan.append(_Pass(pos.to(device), targets.to(device), self.rope_cos[pos].to(device),
                                  self.rope_sin[pos].to(device), heads))
            self._plans[device] = plan
        return self._plans[device]

    def new_cache(self, batch: int, device: torch.device, dtype: torch.dtype) -> list[KVCache]:
        """Empty key/value caches for the trunk blocks followed by the extra head blocks."""
        hd = self.dim // self.heads
        L = self.ordering.seq_len
        n = len(self.blocks) + len(self.extra_blocks)
        return [KVCache(torch.empty(batch, self.heads, L, hd, device=device, dtype=dtype),
                        torch.empty(batch, self.heads, L, hd, device=device, dtype=dtype)) for _ in range(n)]

    @torch.no_grad()
    def generate(self, labels: Tensor, cfg_scale: float = 1.0, cfg_interval: tuple[float, float] = (0.0, 1.0),
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 generator: torch.Generator | None = None, return_logits: bool = False,
                 tokens: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """Decode a token grid group by group with a key/value cache (``ordering.num_groups`` passes).

        Each pass feeds the previous group (the class prefix first), gathers the next group's predictor
        logits, averages them per token, applies classifier-free guidance ``uncond + s * (cond - uncond)``
        (only for passes whose fraction ``step / num_groups`` lies in ``cfg_interval``) and samples.

        Args:
            labels: ``(B,)`` long class ids.
            cfg_scale: guidance scale (1 = no guidance, the unconditional branch is then skipped).
            cfg_interval: ``(lo, hi)`` fractions of the passes where guidance is applied.
            temperature, top_k, top_p: sampling controls (``temperature=0`` is greedy).
            generator: random generator for reproducible sampling.
            return_logits: also return the guided logits ``(B, N, V)`` each token was sampled from.
            tokens: ``(B, *grid)`` forced tokens (teacher forcing through the cache; used to check the cache).

        Returns:
            ``(B, *grid)`` long tokens (and the logits when asked).
        """
        o = self.ordering
        B = labels.shape[0]
        device = labels.device
        guided = cfg_scale != 1.0
        lab = torch.cat([labels, torch.full_like(labels, self.null_label)]) if guided else labels
        Bt = lab.shape[0]
        dtype = self.tok_emb.weight.dtype
        caches = self.new_cache(Bt, device, dtype)
        depth = len(self.blocks)
        out = torch.zeros(B, o.num_tokens, dtype=torch.long, device=device)
        forced = tokens.reshape(B, -1) if tokens is not None else None
        all_logits = torch.zeros(B, o.num_tokens, self.vocab_size, device=device) if return_logits else None
        prev: Tensor | None = None
        for step, ps in enumerate(self._plan(device)):
            if step == 0:
                x = self.cls_emb(lab).unsqueeze(1)  # (Bt, 1, C)
            else:
                x = self.tok_emb(torch.cat([prev, prev]) if guided else prev)  # (Bt, n_fed, C)
            cos, sin = ps.cos, ps.sin
            for blk, cache in zip(self.blocks, caches[:depth]):
                x = blk(x, cos, sin, None, cache)  # the fed group sees the cache and itself: no mask needed
            logits: Tensor | None = None
            for a, hp in enumerate(ps.heads):
                h = x if a == 0 else self.extra_blocks[a - 1](x, cos, sin, None, caches[depth + a - 1], hp.query)
                la = self.head_logits(a, h if hp.rows is None else h[:, hp.rows])  # (Bt, n_sel, V)
                if hp.weight is not None:
                    la = la * hp.weight
                if hp.targets is None:
                    logits = la if logits is None else logits + la
                else:
                    if logits is None:
                        logits = la.new_zeros(Bt, len(ps.targets), self.vocab_size)
                    logits = logits.index_add(1, hp.targets, la)
            assert logits is not None
            targets = ps.targets
            if guided:
                cond, unc = logits.chunk(2)
                frac = step / o.num_groups
                logits = unc + cfg_scale * (cond - unc) if cfg_interval[0] <= frac <= cfg_interval[1] else cond
            if all_logits is not None:
                all_logits[:, targets] = logits.float()
            nxt = forced[:, targets] if forced is not None else sample_logits(logits, temperature, top_k, top_p,
                                                                                generator)
            out[:, targets] = nxt
            prev = nxt
        grid = out.view(B, *o.shape)
        return (grid, all_logits) if return_logits else grid

    def num_passes(self) -> int:
        """Forward passes per generated grid."""
        return self.ordering.num_groups


def bits_per_token(nll: Tensor) -> Tensor:
    """Convert a mean negative log-likelihood in nats to bits."""
    return nll / math.log(2.0)
