"""Image tokenizers: an exact pixel quantizer and a small VQ-VAE (model only; training in ``TokenizerTask``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PixelQuantizer", "VQVAE", "VectorQuantizer"]


class PixelQuantizer(nn.Module):
    """Uniform per-pixel quantizer: ``q = round(x * (levels - 1))``; channels are packed into one token.

    For ``C`` channels the token is ``sum_c q_c * levels ** c`` (vocabulary ``levels ** C``), so images whose
    values lie on the grid ``k / (levels - 1)`` round-trip exactly. Works for 2D images ``(B, C, H, W)`` and
    volumes ``(B, C, D, H, W)``.

    Args:
        levels: quantisation levels per channel (17 makes scikit-learn's digits, valued 0..16, exact).
        channels: image channels.
    """

    def __init__(self, levels: int = 17, channels: int = 1) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError(f"levels must be >= 2, got {levels}")
        self.levels, self.channels = levels, channels
        self.vocab_size = levels**channels
        self.downsample = 1
        self.register_buffer("radix", levels ** torch.arange(channels), persistent=False)

    def encode(self, images: Tensor) -> Tensor:
        """``(B, C, *S)`` in [0, 1] -> ``(B, *S)`` long tokens."""
        if images.shape[1] != self.channels:
            raise ValueError(f"PixelQuantizer: expected {self.channels} channels, got shape {tuple(images.shape)}")
        q = (images.clamp(0, 1) * (self.levels - 1)).round().long()  # (B, C, *S)
        view = (1, -1) + (1,) * (images.dim() - 2)
        return (q * self.radix.view(view)).sum(1)

    def decode(self, tokens: Tensor) -> Tensor:
        """``(B, *S)`` long -> ``(B, C, *S)`` float in [0, 1]."""
        digits = (tokens.unsqueeze(1) // self.radix.view((1, -1) + (1,) * (tokens.dim() - 1))) % self.levels
        return digits.float() / (self.levels - 1)


class VectorQuantizer(nn.Module):
    """Nearest-code quantisation on the unit sphere with a straight-through gradient and dead-code restart.

    Both the encoder output and the codebook are L2-normalised, so the nearest code maximises cosine
    similarity. Loss: ``||sg[z] - e||^2 + beta * ||z - sg[e]||^2`` (codebook + commitment).

    Args:
        num_codes: codebook size ``K``.
        code_dim: code width ``d``.
        beta: commitment weight.
        restart_threshold: a code whose usage EMA (expected uses per batch) falls below this is restarted at a
            random encoder output of the current batch (training only).
        ema_decay: decay of the usage EMA.
    """

    def __init__(self, num_codes: int = 64, code_dim: int = 16, beta: float = 0.25, restart_threshold: float = 0.03,
                 ema_decay: float = 0.95) -> None:
        super().__init__()
        self.num_codes, self.code_dim, self.beta = num_codes, code_dim, beta
        self.restart_threshold, self.ema_decay = restart_threshold, ema_decay
        self.codebook = nn.Parameter(torch.randn(num_codes, code_dim))
        self.register_buffer("usage", torch.ones(num_codes))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Quantise ``z (B, d, *S)``.

        Returns:
            ``z_q (B, d, *S)`` (straight-through), ``codes (B, *S)`` long, the VQ loss (scalar).
        """
        zf = F.normalize(z.movedim(1, -1), dim=-1)  # (B, *S, d)
        flat = zf.reshape(-1, self.code_dim)  # (M, d)
        book = F.normalize(self.codebook, dim=-1)  # (K, d)
        codes = (flat @ book.T).argmax(-1)  # (M,)
        e = book[codes]
        loss = F.mse_loss(e, flat.detach()) + self.beta * F.mse_loss(flat, e.detach())
        q = flat + (e - flat).detach()
        if self.training:
            self._restart_dead(flat.detach(), codes)
        shape = zf.shape
        return q.view(shape).movedim(-1, 1).contiguous(), codes.view(shape[:-1]), loss

    @torch.no_grad()
    def _restart_dead(self, flat: Tensor, codes: Tensor) -> None:
        counts = torch.bincount(codes, minlength=self.num_codes).float()
        self.usage.mul_(self.ema_decay).add_(counts, alpha=1 - self.ema_decay)
        dead = self.usage < self.restart_threshold
        n = int(dead.sum())
        if n:
            pick = torch.randint(0, flat.shape[0], (n,), device=flat.device)
            self.codebook.data[dead] = flat[pick] + 0.01 * torch.randn_like(flat[pick])
            self.usage[dead] = 1.0

    def lookup(self, codes: Tensor) -> Tensor:
        """``(B, *S)`` long -> ``(B, d, *S)`` normalised code vectors."""
        return F.normalize(self.codebook, dim=-1)[codes].movedim(-1, 1).contiguous()


class _ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, ch, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class VQVAE(nn.Module):
    """Convolutional VQ-VAE: ``(B, C, H, W)`` in [0, 1] <-> ``(B, H / f, W / f)`` code grids.

    Args:
        in_channels: image channels.
        hidden: convolution width.
        downsample: spatial reduction ``f`` (a power of 2).
        num_codes: codebook size (the AR vocabulary).
        code_dim: code width.
        beta: commitment weight.
    """

    def __init__(self, in_channels: int = 3, hidden: int = 64, downsample: int = 4, num_codes: int = 64,
                 code_dim: int = 16, beta: float = 0.25) -> None:
        super().__init__()
        n_down = int(round(math.log2(downsample)))
        if 2**n_down != downsample or n_down < 1:
            raise ValueError(f"downsample must be a power of 2 >= 2, got {downsample}")
        self.downsample, self.vocab_size, self.channels = downsample, num_codes, in_channels
        enc: list[nn.Module] = [nn.Conv2d(in_channels, hidden, 3, padding=1)]
        for _ in range(n_down):
            enc += [nn.ReLU(), nn.Conv2d(hidden, hidden, 4, stride=2, padding=1)]
        enc += [_ResBlock(hidden), nn.ReLU(), nn.Conv2d(hidden, code_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        self.quantizer = VectorQuantizer(num_codes, code_dim, beta)
        dec: list[nn.Module] = [nn.Conv2d(code_dim, hidden, 3, padding=1), _ResBlock(hidden)]
        for _ in range(n_down):
            dec += [nn.ReLU(), nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1)]
        dec += [nn.ReLU(), nn.Conv2d(hidden, in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Returns the reconstruction ``(B, C, H, W)`` (unbounded, trained with MSE to the [0, 1] image; a
        sigmoid would saturate on black backgrounds), codes ``(B, h, w)`` and the VQ loss."""
        q, codes, vq_loss = self.quantizer(self.encoder(images * 2 - 1))
        return self.decoder(q), codes, vq_loss

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """``(B, C, H, W)`` in [0, 1] -> ``(B, H / f, W / f)`` long codes."""
        return self.quantizer(self.encoder(images * 2 - 1))[1]

    @torch.no_grad()
    def decode(self, tokens: Tensor) -> Tensor:
        """``(B, h, w)`` long codes -> ``(B, C, h f, w f)`` images in [0, 1]."""
        return self.decoder(self.quantizer.lookup(tokens)).clamp(0, 1)
