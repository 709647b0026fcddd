"""Angle coders: how a rotated detector represents the box angle ``theta`` in its head.

All coders share one interface, so the choice is one config key (``angle_coder``):

* ``encode(theta (...)) -> (..., D)`` with ``D = encode_size``,
* ``decode(v (..., D), keepdim=False) -> (...)`` (``(..., 1)`` with ``keepdim``), angles in le90,
  ``[-pi/2, pi/2)``, radians, clockwise-positive in image coordinates,
* ``loss(pred_encoding (..., D), target_theta (...)) -> (...)``: the angle loss the detector optimises,
* ``constraint_loss(pred_encoding (..., D)) -> (...)``: a regulariser on the raw encoding (UCR only).

A rectangle is symmetric under a half turn, so every coder works with the phase ``2 theta`` (period pi).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from visionkit.datamodules.obb.transforms import wrap_le90

__all__ = ["AngleCoder", "CSLCoder", "PSCCoder", "PlainAngleCoder", "UCRCoder", "build_coder", "wrap_le90"]


class AngleCoder:
    """Base class of the angle coders (see the module docstring for the interface).

    Attributes:
        encode_size: channels of the encoding ``D``.
        differentiable_decode: whether gradients flow from the decoded angle into the encoding (so a box
            loss on the decoded box trains the angle too).
        bias_init: initial bias of the head's angle output (``None``: the layer's default).
    """

    encode_size: int = 1
    differentiable_decode: bool = True
    bias_init: float | None = None

    def encode(self, theta: Tensor) -> Tensor:
        raise NotImplementedError

    def decode(self, v: Tensor, keepdim: bool = False) -> Tensor:
        raise NotImplementedError

    def loss(self, pred: Tensor, target_theta: Tensor) -> Tensor:
        """Angle loss per element: ``pred (..., D)``, ``target_theta (...)`` -> ``(...)``."""
        raise NotImplementedError

    def encode_doubled(self, c: Tensor, s: Tensor) -> Tensor:
        """Encoding ``(..., D)`` of a doubled-angle vector ``(c, s) = rho (cos 2θ, sin 2θ)``, each ``(...)``.

        Default: the encoding of ``θ = atan2(s, c) / 2`` (``rho`` is dropped); coders that are linear in
        ``(cos 2θ, sin 2θ)`` keep ``rho`` as the length of the encoding.
        """
        return self.encode(torch.atan2(s, c) / 2)

    def constraint_loss(self, v: Tensor) -> Tensor:
        """Regulariser on the predicted encoding ``(..., D) -> (...)``; zero for this coder."""
        return v.new_zeros(v.shape[:-1])

    def _check(self, v: Tensor) -> None:
        if v.shape[-1] != self.encode_size:
            raise ValueError(f"{type(self).__name__}: expected encodings of size {self.encode_size} in the last "
                             f"dimension, got shape {tuple(v.shape)}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def _smooth_l1(x: Tensor, beta: float) -> Tensor:
    ax = x.abs()
    return torch.where(ax < beta, 0.5 * ax * ax / beta, ax - 0.5 * beta) if beta > 0 else ax


class UCRCoder(AngleCoder):
    """Unit Cycle Resolver: the phase ``2 theta`` as a point on (a projection of) the unit circle.

    Encoding, ``m = dims``: ``m = 2`` -> ``[cos 2θ, sin 2θ]``; ``m >= 3`` -> ``v_k = cos(2θ + 2πk/m)``,
    ``k = 0..m-1``. Decoding: ``m = 2`` -> ``c = v_0, s = v_1``; ``m >= 3`` -> ``c = Σ v_k cos(2πk/m)``,
    ``s = -Σ v_k sin(2πk/m)`` (for a valid encoding ``c = m/2 cos 2θ``, ``s = m/2 sin 2θ``, and
    ``(c, s) = (cos 2θ, sin 2θ)`` for ``m = 2``); ``θ = atan2(s, c) / 2``. Where the decoded point is too close to
    the origin, ``c² + s² < r² · invalid_thr`` with ``r = 1`` for ``m = 2`` and ``r = m/2`` otherwise, the angle is
    ill-defined and set to 0.

    The unit-circle constraint ``|Σ v̂_k² − m/2| + [m ≥ 3]·|Σ v̂_k|`` keeps predictions on the manifold of valid
    encodings (for ``m = 2``, ``Σ v_k² = 1 = m/2``; for ``m ≥ 3``, ``Σ v_k² = m/2`` and ``Σ v_k = 0``).

    Args:
        dims: number of components ``m >= 2``.
        invalid_thr: fraction of the squared nominal radius below which the angle is reported as 0.
        beta: smooth-L1 transition of the encoding loss (0: plain L1).
    """

    def __init__(self, dims: int = 3, invalid_thr: float = 0.0, beta: float = 0.1) -> None:
        if dims < 2:
            raise ValueError(f"UCRCoder: dims must be >= 2, got {dims}")
        self.dims = int(dims)
        self.invalid_thr = float(invalid_thr)
        self.beta = float(beta)
        self.encode_size = self.dims
        k = torch.arange(self.dims, dtype=torch.float64)
        self._shift = 2 * math.pi * k / self.dims  # (m,)

    def encode(self, theta: Tensor) -> Tensor:
        phase = 2 * theta
        if self.dims == 2:
            return torch.stack([torch.cos(phase), torch.sin(phase)], dim=-1)
        shift = self._shift.to(theta)
        return torch.cos(phase[..., None] + shift)

    def encode_doubled(self, c: Tensor, s: Tensor) -> Tensor:
        """Linear in ``(c, s)``: ``cos(2θ + shift_k)`` scaled by ``rho`` (``[c, s]`` for ``m = 2``)."""
        if self.dims == 2:
            return torch.stack([c, s], dim=-1)
        shift = self._shift.to(c)
        return c[..., None] * torch.cos(shift) - s[..., None] * torch.sin(shift)

    def _cs(self, v: Tensor) -> tuple[Tensor, Tensor]:
        if self.dims == 2:
            return v[..., 0], v[..., 1]
        shift = self._shift.to(v)
        return (v * torch.cos(shift)).sum(-1), -(v * torch.sin(shift)).sum(-1)

    def decode(self, v: Tensor, keepdim: bool = False) -> Tensor:
        self._check(v)
        c, s = self._cs(v)
        theta = torch.atan2(s, c) / 2
        theta = torch.where(theta >= math.pi / 2, theta - math.pi, theta)  # atan2 = pi maps to -pi/2
        if self.invalid_thr > 0:
            radius2 = 1.0 if self.dims == 2 else (self.dims / 2) ** 2
            theta = torch.where(c * c + s * s < radius2 * self.invalid_thr, torch.zeros_like(theta), theta)
        return theta[..., None] if keepdim else theta

    def loss(self, pred: Tensor, target_theta: Tensor) -> Tensor:
        self._check(pred)
        return _smooth_l1(pred - self.encode(target_theta), self.beta).sum(-1)

    def constraint_loss(self, v: Tensor) -> Tensor:
        self._check(v)
        loss = ((v * v).sum(-1) - self.dims / 2).abs()
        if self.dims >= 3:
            loss = loss + v.sum(-1).abs()
        return loss


class PSCCoder(AngleCoder):
    """Phase-Shifting Coder: ``N``-step phase shifting of the phase ``2θ``, optionally with a second frequency.

    Encoding: ``x_n = cos(2θ + 2πn/N)``, ``n = 0..N-1``; with ``dual_freq`` also ``cos(4θ + 2πn/N)``
    (``D = 2N``). Decoding (per frequency) by the N-step phase-shifting formula
    ``φ = atan2(−Σ x_n sin(2πn/N), Σ x_n cos(2πn/N))``. With two frequencies, ``φ₂ = 4θ`` fixes the angle modulo
    ``π/2`` and ``φ₁ = 2θ`` picks the half: ``2θ ∈ {φ₂/2, φ₂/2 + π}``, whichever is closer to ``φ₁``. Where the
    modulation ``(Σ x_n cos)² + (Σ x_n sin)²`` of the frequency used is below ``thr_mod`` (scaled so that a
    valid encoding has modulation 1) the angle is set to 0. Loss: smooth-L1 on the encoding.

    Args:
        num_step: phase steps ``N >= 3``.
        dual_freq: add the ``4θ`` frequency.
        thr_mod: modulation threshold (fraction of the nominal value).
        beta: smooth-L1 transition (0: plain L1).
    """

    def __init__(self, num_step: int = 3, dual_freq: bool = True, thr_mod: float = 0.0, beta: float = 0.1) -> None:
        if num_step < 3:
            raise ValueError(f"PSCCoder: num_step must be >= 3, got {num_step}")
        self.num_step = int(num_step)
        self.dual_freq = bool(dual_freq)
        self.thr_mod = float(thr_mod)
        self.beta = float(beta)
        self.encode_size = self.num_step * (2 if self.dual_freq else 1)
        self._shift = 2 * math.pi * torch.arange(self.num_step, dtype=torch.float64) / self.num_step

    def encode(self, theta: Tensor) -> Tensor:
        shift = self._shift.to(theta)
        parts = [torch.cos(2 * theta[..., None] + shift)]
        if self.dual_freq:
            parts.append(torch.cos(4 * theta[..., None] + shift))
        return torch.cat(parts, dim=-1)

    def _phase(self, x: Tensor) -> tuple[Tensor, Tensor]:
        shift = self._shift.to(x)
        c = (x * torch.cos(shift)).sum(-1) * (2 / self.num_step)
        s = -(x * torch.sin(shift)).sum(-1) * (2 / self.num_step)
        return torch.atan2(s, c), c * c + s * s

    def decode(self, v: Tensor, keepdim: bool = False) -> Tensor:
        self._check(v)
        n = self.num_step
        phase, mod = self._phase(v[..., :n])  # phase ~ 2θ in (-π, π]
        if self.dual_freq:
            phase2, mod = self._phase(v[..., n:])  # phase2 ~ 4θ
            half = phase2 / 2  # one candidate for 2θ; the other is half + π
            flip = torch.cos(half - phase) < 0
            phase = torch.where(flip, half + math.pi, half)
        theta = wrap_le90(phase / 2)
        if self.thr_mod > 0:
            theta = torch.where(mod < self.thr_mod, torch.zeros_like(theta), theta)
        return theta[..., None] if keepdim else theta

    def loss(self, pred: Tensor, target_theta: Tensor) -> Tensor:
        self._check(pred)
        return _smooth_l1(pred - self.encode(target_theta), self.beta).sum(-1)


class CSLCoder(AngleCoder):
    """Circular Smooth Label: angle classification over ``D = 180/omega`` bins with a circular gaussian window.

    Bin ``i`` stands for ``θ_i = −π/2 + i·ω`` (so ``θ = 0`` is a bin centre). A target angle becomes the soft label
    ``exp(−d²/2r²)`` where ``d`` is the circular distance in bins to the nearest bin (period ``D`` bins = π).
    Decoding takes the arg-max bin (not differentiable). Loss: sigmoid focal loss with soft targets summed over
    bins (the head's bias starts at the focal prior).

    Args:
        omega: bin width in degrees (must divide 180).
        radius: gaussian window radius ``r`` in bins.
        gamma: focal exponent (0: plain binary cross-entropy).
    """

    differentiable_decode = False

    def __init__(self, omega: float = 1.0, radius: float = 6.0, gamma: float = 2.0) -> None:
        n = 180.0 / omega
        if omega <= 0 or abs(n - round(n)) > 1e-6:
            raise ValueError(f"CSLCoder: omega must divide 180 degrees, got {omega}")
        self.omega = float(omega)
        self.radius = float(radius)
        self.gamma = float(gamma)
        self.encode_size = round(n)
        self.bias_init = -math.log((1 - 0.01) / 0.01)

    def _bin(self, theta: Tensor) -> Tensor:
        step = math.radians(self.omega)
        return torch.remainder(torch.round((theta + math.pi / 2) / step), self.encode_size)

    def encode(self, theta: Tensor) -> Tensor:
        idx = self._bin(theta)  # (...)
        bins = torch.arange(self.encode_size, dtype=theta.dtype, device=theta.device)
        d = (bins - idx[..., None]).abs()
        d = torch.minimum(d, self.encode_size - d)  # circular distance in bins
        return torch.exp(-d * d / (2 * self.radius**2))

    def decode(self, v: Tensor, keepdim: bool = False) -> Tensor:
        self._check(v)
        idx = v.argmax(-1).to(v.dtype if v.is_floating_point() else torch.float32)
        theta = -math.pi / 2 + idx * math.radians(self.omega)
        return theta[..., None] if keepdim else theta

    def loss(self, pred: Tensor, target_theta: Tensor) -> Tensor:
        self._check(pred)
        target = self.encode(target_theta).to(pred.dtype)
        bce = F.binary_cross_entropy_with_logits(pred, target, reduction="none")
        if self.gamma > 0:
            bce = bce * (torch.sigmoid(pred) - target).abs().pow(self.gamma)
        return bce.sum(-1)


class PlainAngleCoder(AngleCoder):
    """Direct regression of θ (``D = 1``) with a π-periodic loss.

    Decoding wraps the output into le90. The loss is smooth-L1 of the wrapped difference
    ``((θ̂ − θ + π/2) mod π) − π/2``, so predicting ``θ ± π`` costs nothing and the boundary ``±π/2`` is not a
    discontinuity of the loss (the gradient is 1 in magnitude almost everywhere).

    Args:
        beta: smooth-L1 transition in radians (0: plain L1).
    """

    def __init__(self, beta: float = 0.05) -> None:
        self.beta = float(beta)
        self.encode_size = 1

    def encode(self, theta: Tensor) -> Tensor:
        return wrap_le90(theta)[..., None]

    def decode(self, v: Tensor, keepdim: bool = False) -> Tensor:
        self._check(v)
        theta = wrap_le90(v[..., 0])
        return theta[..., None] if keepdim else theta

    def loss(self, pred: Tensor, target_theta: Tensor) -> Tensor:
        self._check(pred)
        return _smooth_l1(wrap_le90(pred[..., 0] - target_theta), self.beta)


CODERS: dict[str, type[AngleCoder]] = {
    "ucr": UCRCoder,
    "psc": PSCCoder,
    "csl": CSLCoder,
    "plain": PlainAngleCoder,
}


def build_coder(name: str, **kwargs: Any) -> AngleCoder:
    """Build an angle coder by name: ``ucr``, ``psc``, ``csl`` or ``plain`` (keyword arguments go to its class).

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    key = name.lower()
    if key not in CODERS:
        raise ValueError(f"model.init_args.angle_coder: unknown coder {name!r}; known: {', '.join(CODERS)}")
    return CODERS[key](**kwargs)
