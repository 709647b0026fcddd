"""Charged-particle simulator and datamodule: physics against a per-particle reference, caching, splits."""

import time

import numpy as np
import pytest
import torch

from visionkit.datamodules.motion.particles import ChargedParticles, simulate_charged_particles


def _reference(x, v, q, dt, steps, max_accel):
    """One simulation integrated with explicit loops over particle pairs (independent implementation)."""
    n = len(q)

    def acc(x):
        a = np.zeros_like(x)
        for i in range(n):
            for j in range(n):
                if i != j:
                    d = x[i] - x[j]
                    a[i] += q[i] * q[j] * d / np.linalg.norm(d) ** 3
            s = np.linalg.norm(a[i])
            if s > max_accel:
                a[i] *= max_accel / s
        return a

    a = acc(x)
    for _ in range(steps):
        v = v + 0.5 * dt * a
        x = x + dt * v
        a = acc(x)
        v = v + 0.5 * dt * a
    return x, v


def test_matches_loop_reference():
    out = simulate_charged_particles(3, num_particles=4, num_steps=300, sample_every=100, dt=1e-3, seed=3)
    rng = np.random.default_rng(3)  # the same draws as the simulator, in the same order
    q = rng.choice(np.array([-1.0, 1.0]), size=(3, 4))
    x0 = rng.standard_normal((3, 4, 3))
    v0 = rng.standard_normal((3, 4, 3))
    v0 *= 0.5 / np.linalg.norm(v0, axis=-1, keepdims=True)
    np.testing.assert_array_equal(out["charges"], q)
    for s in range(3):
        x, v = _reference(x0[s], v0[s], q[s], 1e-3, 200, 100.0)
        np.testing.assert_allclose(out["loc"][s, 1], x, atol=1e-10)
        np.testing.assert_allclose(out["vel"][s, 1], v, atol=1e-10)


def test_energy_conserved_without_clipping():
    out = simulate_charged_particles(20, num_steps=2000, sample_every=100, dt=1e-3, max_accel=1e12, loc_std=3.0,
                                     seed=1)
    x, v, q = out["loc"], out["vel"], out["charges"]
    d = np.linalg.norm(x[:, :, :, None] - x[:, :, None], axis=-1) + np.eye(5)
    pot = 0.5 * (q[:, None, :, None] * q[:, None, None, :] * (1 - np.eye(5)) / d).sum((-1, -2))
    energy = 0.5 * (v ** 2).sum((-1, -2)) + pot  # (S, T)
    drift = np.abs(energy - energy[:, :1]).max(1)
    assert np.median(drift) < 1e-4


def test_frames_and_determinism():
    a = simulate_charged_particles(2, num_steps=10_000, sample_every=200, seed=5)
    b = simulate_charged_particles(2, num_steps=10_000, sample_every=200, seed=5)
    assert a["loc"].shape == (2, 49, 5, 3)
    np.testing.assert_array_equal(a["loc"], b["loc"])
    assert not np.allclose(a["loc"], simulate_charged_particles(2, num_steps=10_000, seed=6)["loc"])


def test_datamodule_cache_and_splits(tmp_path):
    kw = dict(num_train=6, num_val=2, num_test=3, num_steps=3000, sample_every=100, past_len=8, future_len=10,
              cache_dir=str(tmp_path), batch_size=4)
    dm = ChargedParticles(**kw)
    dm.setup("fit")
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    dm2 = ChargedParticles(**kw)
    dm2.setup("fit")
    assert files[0].stat().st_mtime_ns == mtime  # read from the cache, not re-simulated
    assert len(dm.train_dataset) == 6 and len(dm.val_dataset) == 2 and len(dm.test_dataset) == 3
    batch = next(iter(dm.train_dataloader()))
    assert batch["past"].shape == (4, 5, 8, 3) and batch["future"].shape == (4, 5, 10, 3)
    assert batch["mask"].all() and batch["charges"].shape == (4, 5)
    # the future continues the past: frames 0-7 then 8-17 of the same simulation
    sims = np.load(files[0])["loc"]
    np.testing.assert_array_equal(dm.test_dataset[0]["future"].numpy(), sims[8].transpose(1, 0, 2)[:, 8:18])
    torch.testing.assert_close(dm.test_dataset[0]["past"], dm2.test_dataset[0]["past"])


def test_bad_frame_ranges_name_the_config():
    with pytest.raises(ValueError, match="data.init_args"):
        ChargedParticles(num_steps=1000, sample_every=100, past_len=5, future_len=10)


@pytest.mark.slow
def test_thousand_simulations_under_a_minute():
    t = time.perf_counter()
    simulate_charged_particles(1000)
    assert time.perf_counter() - t < 60
