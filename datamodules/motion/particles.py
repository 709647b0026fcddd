"""Charged particles: a vectorised N-body simulator with Coulomb-like forces and its datamodule.

Each simulation holds ``num_particles`` point charges ``q_i = ±1`` (drawn uniformly) in ``dim`` dimensions.
Particle ``i`` is accelerated by ``a_i = Σ_j q_i q_j (x_i − x_j) / |x_i − x_j|^3`` (like charges repel), the
acceleration norm clipped at ``max_accel`` so close encounters stay integrable. The equations are integrated
with a kick-drift-kick leapfrog of step ``dt`` and sampled every ``sample_every`` steps. Initial positions are
``N(0, loc_std²)``, initial velocities random directions of norm ``vel_norm``. The dynamics commute with
rotations, reflections and translations (no box by default; ``box_size`` adds reflecting walls).

All simulations advance together as one ``(S, N, D)`` array, so 1 000 simulations of 10 000 steps take seconds.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from visionkit.datamodules.base import BaseDataModule
from visionkit.datamodules.motion.common import TrajectoryDataset
from visionkit.io import atomic_open


def simulate_charged_particles(num_sims: int, num_particles: int = 5, dim: int = 3, num_steps: int = 10_000,
                               sample_every: int = 200, dt: float = 1e-3, loc_std: float = 1.0,
                               vel_norm: float = 0.5, max_accel: float = 100.0, box_size: float | None = None,
                               seed: int = 0) -> dict[str, np.ndarray]:
    """Simulate ``num_sims`` independent charged-particle systems at once.

    Args:
        num_sims: number of simulations ``S``.
        num_particles: particles per simulation ``N``.
        dim: spatial dimension ``D``.
        num_steps: integration steps; frames are taken after ``sample_every, 2 sample_every, ...`` steps
            (``num_steps // sample_every - 1`` frames: 49 for 10 000 steps sampled every 200).
        sample_every: steps between saved frames.
        dt: integration step.
        loc_std: standard deviation of the initial positions.
        vel_norm: speed of every particle at ``t = 0``.
        max_accel: upper bound of the acceleration norm (softens singular encounters).
        box_size: half-width of an optional box with elastic walls; ``None`` means free space.
        seed: seed of the initial conditions and charges.

    Returns:
        ``loc (S, T, N, D)`` and ``vel (S, T, N, D)`` float64 with ``T = num_steps // sample_every - 1`` frames,
        ``charges (S, N)`` in ``{-1, +1}``.
    """
    rng = np.random.default_rng(seed)
    charges = rng.choice(np.array([-1.0, 1.0]), size=(num_sims, num_particles))
    x = rng.standard_normal((num_sims, num_particles, dim)) * loc_std
    v = rng.standard_normal((num_sims, num_particles, dim))
    v *= vel_norm / np.linalg.norm(v, axis=-1, keepdims=True)
    qq = charges[:, :, None] * charges[:, None, :] * (1.0 - np.eye(num_particles))  # (S, N, N), 0 on the diagonal
    eye = np.eye(num_particles)

    def accel(x: np.ndarray) -> np.ndarray:
        diff = x[:, :, None, :] - x[:, None, :, :]  # (S, N, N, D): x_i - x_j
        r2 = np.einsum("sijd,sijd->sij", diff, diff) + eye  # the diagonal (zero force) gets r = 1
        w = qq / (r2 * np.sqrt(r2))
        a = np.einsum("sij,sijd->sid", w, diff)  # (S, N, D)
        norm = np.sqrt(np.einsum("sid,sid->si", a, a))[..., None]
        return a * np.minimum(1.0, max_accel / np.maximum(norm, 1e-300))

    n_frames = num_steps // sample_every - 1
    loc = np.empty((num_sims, n_frames, num_particles, dim))
    vel = np.empty_like(loc)
    a = accel(x)
    for step in range(1, n_frames * sample_every + 1):  # sequential in time; each step vectorised over S, N
        v = v + (0.5 * dt) * a
        x = x + dt * v
        if box_size is not None:
            over, under = x > box_size, x < -box_size
            x = np.where(over, 2 * box_size - x, np.where(under, -2 * box_size - x, x))
            v = np.where(over | under, -v, v)
        a = accel(x)
        v = v + (0.5 * dt) * a
        if step % sample_every == 0:
            loc[:, step // sample_every - 1], vel[:, step // sample_every - 1] = x, v
    return {"loc": loc, "vel": vel, "charges": charges}


class ChargedParticles(BaseDataModule):
    """Charged-particle trajectories, simulated once and cached as ``.npz`` under ``cache_dir``.

    One sample per simulation: frames ``past_start .. past_start + past_len - 1`` are observed and the next
    ``future_len`` frames (starting ``future_offset`` frames after the last observed one) are predicted.
    Batches: ``past (B, N, T_p, D)``, ``future (B, N, T_f, D)``, ``mask (B, N)`` (all True), ``charges (B, N)``.
    The train/val/test simulations come from one seeded run (first ``num_train``, next ``num_val``, last ``num_test``).

    Defaults: 5 particles in 3D, dt 1e-3, 10 000 steps sampled every 200 (49 frames), frames 0-19 -> 20-39.

    Args:
        num_train: training simulations.
        num_val: validation simulations.
        num_test: test simulations.
        num_particles: particles per simulation.
        dim: spatial dimension.
        num_steps: integration steps per simulation.
        sample_every: steps between frames.
        dt: integration step.
        past_start: first observed frame.
        past_len: observed frames ``T_p``.
        future_len: predicted frames ``T_f``.
        future_offset: frames between the last observed frame and the first predicted one (1 = the next).
        box_size: optional box half-width (None: free space).
        cache_dir: folder of the cached simulations.
        data_seed: seed of the simulation.
        **kwargs: ``batch_size``, ``num_workers``, ``seed``, ``pin_memory``.
    """

    def __init__(self, num_train: int = 500, num_val: int = 100, num_test: int = 100, num_particles: int = 5,
                 dim: int = 3, num_steps: int = 10_000, sample_every: int = 200, dt: float = 1e-3, past_start: int = 0,
                 past_len: int = 20, future_len: int = 20, future_offset: int = 1, box_size: float | None = None,
                 cache_dir: str = "data/charged_particles", data_seed: int = 42, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_train, self.num_val, self.num_test = num_train, num_val, num_test
        self.sim_args = dict(num_particles=num_particles, dim=dim, num_steps=num_steps, sample_every=sample_every,
                             dt=dt, box_size=box_size, seed=data_seed)
        self.past_start, self.past_len = past_start, past_len
        self.future_len, self.future_offset = future_len, future_offset
        self.cache_dir = Path(cache_dir)
        n_frames = num_steps // sample_every - 1
        last = past_start + past_len - 1 + future_offset + future_len - 1
        if past_len < 1 or future_len < 1 or past_start < 0 or future_offset < 1 or last >= n_frames:
            raise ValueError(
                f"data.init_args: frames {past_start}+{past_len} -> +{future_offset}, {future_len} do not fit in "
                f"the {n_frames} simulated frames (num_steps / sample_every)")

    def cache_path(self) -> Path:
        """The ``.npz`` file of this configuration (name derived from all simulation arguments)."""
        n = self.num_train + self.num_val + self.num_test
        key = json.dumps({**self.sim_args, "num_sims": n}, sort_keys=True)
        return self.cache_dir / f"charged_{n}_{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"

    def load_simulations(self) -> dict[str, np.ndarray]:
        """Read the cached simulations, simulating and caching them on first use."""
        path = self.cache_path()
        if path.exists():
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        sims = simulate_charged_particles(self.num_train + self.num_val + self.num_test, **self.sim_args)
        with atomic_open(path, "wb") as f:
            np.savez(f, loc=sims["loc"].astype(np.float32), charges=sims["charges"].astype(np.int8))
        return {"loc": sims["loc"].astype(np.float32), "charges": sims["charges"].astype(np.int8)}

    def prepare_data(self) -> None:
        self.load_simulations()

    def setup(self, stage: str | None = None) -> None:
        sims = self.load_simulations()
        loc = torch.from_numpy(sims["loc"]).permute(0, 2, 1, 3)  # (S, N, T, D)
        q = torch.from_numpy(sims["charges"]).float()
        p0 = self.past_start
        f0 = p0 + self.past_len - 1 + self.future_offset
        past, future = loc[:, :, p0:p0 + self.past_len], loc[:, :, f0:f0 + self.future_len]
        bounds = np.cumsum([0, self.num_train, self.num_val, self.num_test])
        parts = [TrajectoryDataset(past[a:b], future[a:b], extra={"charges": q[a:b]})
                 for a, b in zip(bounds[:-1], bounds[1:])]
        self.train_dataset, self.val_dataset, self.test_dataset = parts
