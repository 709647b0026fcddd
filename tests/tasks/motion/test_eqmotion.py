"""EqMotion: E(D) equivariance, permutation equivariance, masking, DCT basis."""

import numpy as np
import pytest
import scipy.fft
import torch

from visionkit.ops.rotations import random_rotation
from visionkit.tasks.motion.eqmotion import EqMotion, dct_matrix


def _orthogonal(dim: int, dtype: torch.dtype, reflect: bool, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if dim == 3:
        R = random_rotation(1, generator=g, dtype=torch.float64)[0]
    else:
        a = torch.rand((), generator=g, dtype=torch.float64) * 6.283
        R = torch.tensor([[a.cos(), -a.sin()], [a.sin(), a.cos()]], dtype=torch.float64)
    if reflect:
        R = R @ torch.diag(torch.tensor([-1.0] + [1.0] * (dim - 1), dtype=torch.float64))
    assert abs(torch.linalg.det(R).item() - (-1 if reflect else 1)) < 1e-12
    return R.to(dtype)


def _model(dim=3, dtype=torch.float64, **kw) -> EqMotion:
    torch.manual_seed(0)
    return EqMotion(past_len=10, future_len=6, dim=dim, channels=16, hidden=32, num_layers=3, **kw).to(dtype).eval()


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("kw", [{}, {"dct": True}, {"num_modes": 3}])
def test_e_d_equivariance_float64(dim, kw):
    m = _model(dim, **kw)
    x = torch.randn(3, 5, 10, dim, dtype=torch.float64).cumsum(2)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 3:] = False
    for reflect in (False, True):
        R = _orthogonal(dim, torch.float64, reflect)
        t = torch.randn(dim, dtype=torch.float64) * 5
        with torch.no_grad():
            y = m(x, mask)
            yg = m(x @ R.T + t, mask)
        ref = (y["future"] @ R.T + t) * mask[..., None, None]
        assert (yg["future"] - ref).abs().max().item() <= 1e-9
        if "modes" in y:
            assert (yg["modes"] - (y["modes"] @ R.T + t) * mask[:, None, :, None, None]).abs().max() <= 1e-9
        # the prediction is not trivially invariant: it moves with the scene
        assert (yg["future"] - y["future"]).abs().max() > 1e-2


def test_equivariance_float32():
    m = _model(3, torch.float32)
    x = torch.randn(4, 6, 10, 3).cumsum(2)
    R = _orthogonal(3, torch.float32, reflect=True)
    t = torch.randn(3) * 3
    with torch.no_grad():
        err = (m(x @ R.T + t)["future"] - (m(x)["future"] @ R.T + t)).abs().max().item()
    assert err <= 1e-4


def test_nonlinearity_branches_exercised():
    """Both branches of the projection non-linearity occur, so equivariance is tested through both."""
    m = _model(3)
    x = torch.randn(2, 5, 10, 3, dtype=torch.float64).cumsum(2)
    seen = []

    def hook(mod, inp, out):
        G = out[0]
        q, k = torch.einsum("cs,...sd->...cd", mod.w_q, G), torch.einsum("cs,...sd->...cd", mod.w_k, G)
        seen.append((q * k).sum(-1))

    hs = [layer.register_forward_hook(hook) for layer in m.layers]
    with torch.no_grad():
        m(x)
    for h in hs:
        h.remove()
    dots = torch.cat([s.flatten() for s in seen])
    assert (dots > 0).any() and (dots < 0).any()


def test_agent_permutation():
    m = _model(3)
    x = torch.randn(3, 7, 10, 3, dtype=torch.float64).cumsum(2)
    mask = torch.rand(3, 7) > 0.3
    mask[:, 0] = True
    perm = torch.randperm(7)
    with torch.no_grad():
        y = m(x, mask)["future"]
        yp = m(x[:, perm], mask[:, perm])["future"]
    assert (yp - y[:, perm]).abs().max().item() <= 1e-10


def test_masked_agents_never_change_others():
    m = _model(3)
    x = torch.randn(2, 6, 10, 3, dtype=torch.float64).cumsum(2)
    mask = torch.tensor([[1, 1, 0, 1, 0, 1], [1, 0, 1, 1, 1, 0]], dtype=torch.bool)
    x2 = x.clone()
    x2[~mask] = torch.randn_like(x2[~mask]) * 1e3
    x2[0, 2] = float("nan")
    with torch.no_grad():
        y, y2 = m(x, mask)["future"], m(x2, mask)["future"]
        # the same scene with the absent agents removed altogether
        y_small = m(x[0:1, mask[0]], None)["future"]
    assert torch.isfinite(y2).all()
    assert torch.equal(y[mask], y2[mask])
    assert (y[0, mask[0]] - y_small[0]).abs().max().item() <= 1e-10
    assert (y2[~mask] == 0).all()


def test_dct_matrix_matches_scipy():
    M = dct_matrix(12, torch.float64).numpy()
    x = np.random.default_rng(0).standard_normal((12, 3))
    np.testing.assert_allclose(M @ x, scipy.fft.dct(x, axis=0, norm="ortho"), atol=1e-12)
    np.testing.assert_allclose(M.T @ M, np.eye(12), atol=1e-12)


def test_gradients_finite_on_static_agents():
    """Agents standing still (zero velocity) must not produce NaN gradients (smooth norms)."""
    m = EqMotion(past_len=5, future_len=3, dim=3, channels=8, hidden=16, num_layers=2)
    x = torch.zeros(1, 3, 5, 3)
    x[0, 1] += 1.0
    x.requires_grad_(True)
    m(x)["future"].sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


@pytest.mark.parametrize("dim", [2, 3])
def test_similarity_equivariance_of_scene_normalisation(dim):
    """pred(s x R + t) = s pred(x) R + t: scale (over 5 decades), rotation/reflection and translation."""
    m = _model(dim, num_modes=2)
    x = torch.randn(3, 5, 10, dim, dtype=torch.float64).cumsum(2)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[2, 1:] = False  # one agent alone: its extent is its own travel
    R = _orthogonal(dim, torch.float64, reflect=True)
    t = torch.randn(dim, dtype=torch.float64) * 7
    with torch.no_grad():
        y = m(x, mask)
        for s in (1e-2, 3.0, 1e3):
            yg = m(s * x @ R.T + t, mask)
            ref = (s * y["modes"] @ R.T + t) * mask[:, None, :, None, None]
            assert ((yg["modes"] - ref).abs().max() / s).item() <= 1e-9


def test_scene_extent_is_a_masked_median_and_ignores_outliers():
    from visionkit.tasks.motion.eqmotion import scene_extent

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 7, 5, 2, generator=g, dtype=torch.float64)
    mask = torch.rand(4, 7, generator=g) < 0.7
    mask[:, 0] = True
    got = scene_extent(x, mask)
    rms = np.sqrt((x.numpy() ** 2).sum(-1).mean(-1))
    for b in range(4):
        vals = np.sort(rms[b][mask[b].numpy()])
        assert got[b].item() == pytest.approx(vals[(len(vals) - 1) // 2])
    far = x.clone()
    far[:, 0] *= 1e4  # one agent a long way off moves the median by at most one rank
    got_far = scene_extent(far, mask)
    assert (got_far <= torch.from_numpy(rms).masked_fill(~mask, 0).amax(1) + 1e-12).all()


def _eth_ucy_batch(tmp_path, scale):
    """Windows of a scene of real extent (24 m, 20-40 pedestrians), read from the 4-column on-disk format."""
    import importlib.util
    import sys
    from pathlib import Path

    from visionkit.datamodules.motion import ETHUCY

    path = Path(__file__).resolve().parents[3] / "tools" / "fake_data.py"
    spec = importlib.util.spec_from_file_location("fake_data", path)
    fake = sys.modules.get("fake_data") or importlib.util.module_from_spec(spec)
    if "fake_data" not in sys.modules:
        sys.modules["fake_data"] = fake
        spec.loader.exec_module(fake)
    root = fake.write_eth_ucy(tmp_path / f"eth_{scale}", frames=110, peds=(20, 40), extent=24.0 * scale,
                             lifetime=(40, 60), seed=0)
    dm = ETHUCY(root=str(root), test_scene="eth", batch_size=8)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    return {"past": batch["past"], "future": batch["future"], "mask": batch["mask"]}


def test_real_extent_scenes_train_with_sane_losses_from_step_zero(tmp_path):
    from visionkit.tasks.motion import MotionPredictionTask

    kw = dict(past_len=8, future_len=12, dim=2, channels=16, hidden=32, num_layers=2, num_modes=20)
    base = _eth_ucy_batch(tmp_path, 1.0)
    span = (base["past"][base["mask"]].amax((0, 1)) - base["past"][base["mask"]].amin((0, 1))).max().item()
    assert base["mask"].sum(1).max() >= 20 and span > 15  # pedestrians over a real scene's extent (metres)
    batch3 = {k: v * 3 if v.is_floating_point() else v for k, v in base.items()}
    torch.manual_seed(0)
    task = MotionPredictionTask(**kw)
    with torch.no_grad():
        l1, l3 = task.batch_losses(base)["loss"], task.batch_losses(batch3)["loss"]
    # finite, and x3 coordinates give x3 the error in the same units (the metric error of a scale-free model)
    assert torch.isfinite(l1) and torch.isfinite(l3) and l1 < span
    assert l3.item() == pytest.approx(3 * l1.item(), rel=1e-4)
    opt = torch.optim.Adam(task.parameters(), lr=3e-3)
    first = l3.item()
    for _ in range(15):
        loss = task.batch_losses(batch3)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    assert loss.item() < 0.5 * first
