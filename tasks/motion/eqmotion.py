"""EqMotion: an equivariant multi-agent motion predictor with invariant interaction reasoning.

The network keeps two kinds of features per agent ``i``:

* a geometric feature ``G_i (C, D)``: ``C`` linear mixtures (over time) of the centred past positions. Every
  operation on ``G`` is a linear combination of vectors with invariant coefficients, so rotating, reflecting
  or translating the input does the same to ``G`` and to the prediction (E(D) equivariance);
* an invariant feature ``h_i (H,)`` built from speeds, turning angles and distances to the scene centre.

Interaction reasoning (once): per-channel distances ``‖G_ic − G_jc‖`` give edge features, a node update and
soft edge categories ``c_ij = softmax(MLP(.) / τ)`` over ``K`` types. Then ``L`` layers each apply
an invariant gate ``G_i += SiLU(W h_i) ⊙ (G_i − Ḡ)``, the equivariant aggregation
``G_i += mean_j φ_f(Σ_k c_ijk φ_k([h_i, h_j, ‖ΔG_ij‖])) ⊙ (G_i − G_j)``, a linear map of the velocity feature, the
equivariant non-linearity (keep ``q_c`` where ``<q_c, k_c> ≥ 0``, else remove its component along ``k_c``) and
an invariant update ``h_i += MLP([h_i, mean_j m_ij])``. A linear map ``C -> T_f`` (per mode) gives the future.

Everything is vectorised over batch, agents and time; pairs are dense ``(B, A, A, ...)`` tensors with the agent
mask applied, so absent agents never influence present ones.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from visionkit.ops.precision import float32_ops


def dct_matrix(n: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Orthonormal DCT-II matrix ``(n, n)``: ``coeffs = M @ x`` along time, ``x = M.T @ coeffs``."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    t = torch.arange(n, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi / n * (t + 0.5) * k) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m.to(dtype)


def mlp(dims: list[int], last_act: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2 or last_act:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class PairMLP(nn.Module):
    """MLP on ``[h_i, h_j, e_ij]`` for all pairs, its first layer split so the node terms are computed per node.

    ``W [h_i, h_j, e_ij] = W_i h_i + W_j h_j + W_e e_ij``: the ``(B, A, A, .)`` work only touches ``e_ij``.
    """

    def __init__(self, node_dim: int, edge_dim: int, dims: list[int], last_act: bool = False) -> None:
        super().__init__()
        self.w_i = nn.Linear(node_dim, dims[0])
        self.w_j = nn.Linear(node_dim, dims[0], bias=False)
        self.w_e = nn.Linear(edge_dim, dims[0], bias=False)
        self.rest = mlp(dims, last_act) if len(dims) > 1 else nn.Identity()

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        """Args: h ``(B, A, N)`` node features, e ``(B, A, A, E)`` edge features. Returns ``(B, A, A, out)``."""
        x = self.w_i(h)[:, :, None] + self.w_j(h)[:, None] + self.w_e(e)
        return self.rest(F.silu(x))


def _norm(x: Tensor, eps: float) -> Tensor:
    """Smooth Euclidean norm over the last dim (invariant; differentiable at 0)."""
    return torch.sqrt((x * x).sum(-1) + eps)


def _mix(weight: Tensor, x: Tensor) -> Tensor:
    """Mix the channel/time axis -2 of ``x (..., S, D)`` with ``weight (C, S)`` -> ``(..., C, D)``."""
    return torch.einsum("cs,...sd->...cd", weight, x)


def scene_extent(X: Tensor, mask: Tensor, floor: float = 1e-6) -> Tensor:
    """Robust size of each scene: the median over present agents of the RMS distance of their positions to
    the scene centre (the origin of ``X``), at least ``floor``.

    Invariant to rotations and translations of the centred input and homogeneous of degree 1 in scale (while
    above ``floor``); the median makes one far-away agent unable to shrink everyone else to nothing.

    Args:
        X: ``(B, A, T, D)`` centred positions (absent agents arbitrary).
        mask: ``(B, A)`` bool, True for present agents.

    Returns:
        ``(B,)`` extents.
    """
    rms = (X * X).sum(-1).mean(-1).sqrt()  # (B, A)
    rms = torch.where(mask, rms, torch.full_like(rms, float("inf")))
    n = mask.sum(1)  # (B,)
    mid = ((n - 1).clamp_min(0) // 2)[:, None]  # lower median
    med = rms.sort(1).values.gather(1, mid)[:, 0]
    med = torch.where(n > 0, med, torch.zeros_like(med))
    return med.clamp_min(floor)


class EqMotionLayer(nn.Module):
    """One equivariant feature-learning layer (gate, aggregation, velocity term, non-linearity, h update)."""

    def __init__(self, channels: int, hidden: int, num_categories: int, eps: float, update_h: bool = True) -> None:
        super().__init__()
        C, H, K = channels, hidden, num_categories
        self.K, self.H, self.eps = K, H, eps
        self.gate = nn.Linear(H, C)
        self.phi = PairMLP(H, C, [H, K * H], last_act=True)  # K category-specific edge functions at once
        self.phi_f = mlp([H, H, C])
        self.w_vel = nn.Parameter(torch.randn(C, C) / math.sqrt(C))
        self.w_q = nn.Parameter(torch.randn(C, C) / math.sqrt(C))
        self.w_k = nn.Parameter(torch.randn(C, C) / math.sqrt(C))
        # the last layer's invariant update would not reach the output (unused parameters break DDP)
        self.node = mlp([2 * H, H, H]) if update_h else None

    def forward(self, G: Tensor, h: Tensor, vel: Tensor, cat: Tensor, m: Tensor, pair: Tensor,
                n_nb: Tensor) -> tuple[Tensor, Tensor]:
        """Args: G ``(B, A, C, D)``, h ``(B, A, H)``, vel ``(B, A, C, D)``, cat ``(B, A, A, K)``,
        m ``(B, A)`` float mask, pair ``(B, A, A)`` float pair mask (no self pairs), n_nb ``(B, 1, 1)``
        neighbour count clamped at 1."""
        B, A = G.shape[:2]
        # invariant gate around the scene centre of the geometric features
        g_bar = (G * m[..., None, None]).sum(1, keepdim=True) / m.sum(1).clamp_min(1)[:, None, None, None]
        G = G + F.silu(self.gate(h))[..., None] * (G - g_bar)
        # equivariant aggregation
        dG = G[:, :, None] - G[:, None]  # (B, A, A, C, D): G_i - G_j
        dist = _norm(dG, self.eps)  # (B, A, A, C)
        phi = self.phi(h, dist).view(B, A, A, self.K, self.H)
        msg = (cat[..., None] * phi).sum(-2)  # (B, A, A, H)
        w = self.phi_f(msg) * pair[..., None]  # (B, A, A, C)
        G = G + (w[..., None] * dG).sum(2) / n_nb[..., None]
        G = G + _mix(self.w_vel, vel)
        # equivariant non-linearity (residual)
        q, k = _mix(self.w_q, G), _mix(self.w_k, G)
        qk = (q * k).sum(-1, keepdim=True)
        q = torch.where(qk >= 0, q, q - qk / ((k * k).sum(-1, keepdim=True) + self.eps) * k)
        G = (G + q) * m[..., None, None]
        # invariant update
        if self.node is not None:
            agg = (msg * pair[..., None]).sum(2) / n_nb
            h = (h + self.node(torch.cat([h, agg], -1))) * m[..., None]
        return G, h


class EqMotion(nn.Module):
    """EqMotion multi-agent trajectory predictor (plain ``nn.Module``).

    Args:
        past_len: observed frames ``T_p``.
        future_len: predicted frames ``T_f``.
        dim: spatial dimension ``D`` (any; 2 for pedestrians, 3 for particles, atoms, joints).
        channels: geometric channels ``C``.
        hidden: invariant feature width ``H``.
        num_layers: equivariant layers ``L``.
        num_categories: edge categories ``K`` of the interaction reasoning.
        tau: softmax temperature of the edge categories.
        num_modes: output modes (``> 1``: best-of-K multi-modal head).
        dct: encode the past and decode the future in the orthonormal DCT basis along time.
        eps: smoothing of norms and projections (does not affect equivariance).
        input_scale: data units per model unit; positions are divided by it on input and predictions multiplied
            by it (e.g. 1000 for millimetres, so the network sees metres).
        normalize: ``"scene"`` (default): every sample is centred on the mean last observed position of its
            present agents and divided by its robust extent (:func:`scene_extent`), and the prediction is
            mapped back exactly, so the network sees O(1) coordinates whatever the scene's size or units and
            the model is equivariant to uniform scaling too (``f(s x) = s f(x)``). ``"none"``: positions are
            only divided by ``input_scale`` (then features grow with the scene extent: a 24 m pedestrian
            scene in metres diverges).
    """

    def __init__(self, past_len: int = 20, future_len: int = 20, dim: int = 3, channels: int = 64, hidden: int = 64,
                 num_layers: int = 4, num_categories: int = 2, tau: float = 1.0, num_modes: int = 1, dct: bool = False,
                 eps: float = 1e-8, input_scale: float = 1.0, normalize: str = "scene") -> None:
        super().__init__()
        if past_len < 2:
            raise ValueError(f"past_len must be >= 2 (velocities by finite difference), got {past_len}")
        if normalize not in ("scene", "none"):
            raise ValueError(f"normalize: expected 'scene' or 'none', got {normalize!r}")
        self.normalize = normalize
        Tp, Tf, C, H, K = past_len, future_len, channels, hidden, num_categories
        self.past_len, self.future_len, self.dim = Tp, Tf, dim
        self.num_modes, self.tau, self.eps, self.dct, self.H = num_modes, tau, eps, dct, H
        self.input_scale = float(input_scale)
        # invariant input: speeds (T_p), cosines of turning angles (T_p - 1), distances to the centre (T_p)
        self.embed = mlp([3 * Tp - 1, H, H])
        self.w_x = nn.Parameter(torch.randn(C, Tp) / math.sqrt(Tp))
        self.w_v = nn.Parameter(torch.randn(C, Tp) / math.sqrt(Tp))
        self.edge = PairMLP(H, C, [H, H], last_act=True)
        self.node = mlp([2 * H, H, H])
        self.category = PairMLP(H, H, [H, K])
        self.layers = nn.ModuleList(EqMotionLayer(C, H, K, eps, update_h=i < num_layers - 1) for i in range(num_layers))
        self.w_out = nn.Parameter(torch.randn(num_modes * Tf, C) / math.sqrt(C))
        if dct:
            self.register_buffer("dct_past", dct_matrix(Tp), persistent=False)
            self.register_buffer("dct_future", dct_matrix(Tf), persistent=False)

    @float32_ops  # coordinates are the features: bfloat16 would break equivariance at ~1e-1
    def forward(self, past: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """Predict the future of every present agent.

        Args:
            past: ``(B, A, T_p, D)`` observed positions.
            mask: ``(B, A)`` bool, True for present agents (default: all). Absent agents' inputs are ignored
                and their outputs are zero.

        Returns:
            ``future (B, A, T_f, D)`` (the first mode) and, when ``num_modes > 1``, ``modes (B, K, A, T_f, D)``.
        """
        B, A, Tp, D = past.shape
        if Tp != self.past_len:
            raise ValueError(f"EqMotion was built for past_len={self.past_len}, got {Tp} frames")
        if mask is None:
            mask = torch.ones(B, A, dtype=torch.bool, device=past.device)
        mb = mask.bool()
        m = mb.to(past.dtype)
        X = torch.where(mb[..., None, None], past / self.input_scale,
                        torch.zeros((), dtype=past.dtype, device=past.device))
        if self.normalize == "scene":
            centre = (X[:, :, -1:] * m[..., None, None]).sum(1, keepdim=True) / m.sum(1).clamp_min(1)[
                :, None, None, None]  # (B, 1, 1, D): mean last observed position
            scale = scene_extent((X - centre) * m[..., None, None], mb).detach()[:, None, None, None]
            X = (X - centre) * m[..., None, None] / scale
        else:
            centre = scale = torch.ones((), dtype=past.dtype, device=past.device).expand(B, 1, 1, 1)
            centre = centre * 0
        n = m.sum(1).clamp_min(1)  # (B,)
        x_bar = X.sum((1, 2), keepdim=True) / (n * Tp)[:, None, None, None]  # (B, 1, 1, D)
        Xc = (X - x_bar) * m[..., None, None]
        V = torch.cat([Xc[:, :, 1:2] - Xc[:, :, :1], Xc[:, :, 1:] - Xc[:, :, :-1]], 2)  # (B, A, T_p, D)

        speed = _norm(V, self.eps)  # (B, A, T_p)
        cos_turn = (V[:, :, 1:] * V[:, :, :-1]).sum(-1) / (speed[:, :, 1:] * speed[:, :, :-1])
        radial = _norm(Xc, self.eps)
        h = self.embed(torch.cat([speed, cos_turn, radial], -1)) * m[..., None]  # (B, A, H)

        if self.dct:
            Xc, V = _mix(self.dct_past, Xc), _mix(self.dct_past, V)
        G = _mix(self.w_x, Xc)  # (B, A, C, D)
        vel = _mix(self.w_v, V)

        pair = m[:, :, None] * m[:, None, :] * (1 - torch.eye(A, dtype=past.dtype, device=past.device))
        n_nb = (m.sum(1) - 1).clamp_min(1)[:, None, None]  # (B, 1, 1)
        # interaction reasoning, computed once
        dist = _norm(G[:, :, None] - G[:, None], self.eps)  # (B, A, A, C)
        e = self.edge(h, dist)  # (B, A, A, H)
        hr = self.node(torch.cat([h, (e * pair[..., None]).sum(2) / n_nb], -1))
        cat = torch.softmax(self.category(hr, e) / self.tau, -1)  # (B, A, A, K)

        for layer in self.layers:
            G, h = layer(G, h, vel, cat, m, pair, n_nb)

        out = _mix(self.w_out, G).view(B, A, self.num_modes, self.future_len, D)
        if self.dct:
            out = _mix(self.dct_future.T, out)
        out = ((out + x_bar[:, :, None]) * scale[:, :, None] + centre[:, :, None]) * (m[..., None, None, None]
                                                                                  * self.input_scale)
        modes = out.permute(0, 2, 1, 3, 4)  # (B, K, A, T_f, D)
        result = {"future": modes[:, 0]}
        if self.num_modes > 1:
            result["modes"] = modes
        return result
