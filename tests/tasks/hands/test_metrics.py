"""Hand metrics against numpy references and closed-form invariances."""

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes

from visionkit.ops.rotations import random_rotation
from visionkit.tasks.hands.metrics import MPJPE, MPVPE, MRRPE, PAMPJPE, procrustes_align


def _joints(B, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, 42, 3, generator=g, dtype=torch.float64) * 50 + torch.tensor([0, 0, 600.0])


def test_pa_mpjpe_of_similarity_transform_is_zero():
    X = _joints(8)
    g = torch.Generator().manual_seed(1)
    R = random_rotation(8, g, dtype=torch.float64)
    s = torch.rand(8, 1, 1, generator=g, dtype=torch.float64) * 2 + 0.2
    t = torch.randn(8, 1, 3, generator=g, dtype=torch.float64) * 100
    Y = s * X @ R.transpose(1, 2) + t
    m = PAMPJPE()
    m.update(Y, X, torch.ones(8, 42))
    assert m.compute().item() < 1e-6
    # a mirror image cannot be aligned by a proper rotation: reflection is excluded
    m2 = PAMPJPE()
    m2.update(X * torch.tensor([-1.0, 1, 1], dtype=torch.float64), X, torch.ones(8, 42))
    assert m2.compute().item() > 1.0


def test_procrustes_matches_scipy_orthogonal_procrustes():
    g = torch.Generator().manual_seed(2)
    P, X = torch.randn(21, 3, generator=g, dtype=torch.float64), torch.randn(21, 3, generator=g, dtype=torch.float64)
    aligned = procrustes_align(P, X).numpy()
    p, x = P.numpy() - P.numpy().mean(0), X.numpy() - X.numpy().mean(0)
    R, sc = orthogonal_procrustes(p, x)  # p @ R ~ x, may include a reflection
    if np.linalg.det(R) > 0:
        s = sc / (p**2).sum()
        np.testing.assert_allclose(aligned, s * p @ R + X.numpy().mean(0), atol=1e-10)
    # optimality: no small perturbation of the aligned points by a similarity lowers the error
    err = ((aligned - X.numpy()) ** 2).sum()
    for scale in (0.99, 1.01):
        assert ((scale * (aligned - aligned.mean(0)) + aligned.mean(0) - X.numpy()) ** 2).sum() >= err


def test_mpjpe_root_relative_and_masks_match_numpy():
    X, Y = _joints(5, 0), _joints(5, 1)
    valid = (torch.rand(5, 42, generator=torch.Generator().manual_seed(3)) > 0.2).double()
    valid[0, 20] = 0  # right wrist invalid: the right hand of sample 0 is ignored
    m = MPJPE()
    m.update(Y, X, valid)
    x, y, v = X.numpy().reshape(5, 2, 21, 3), Y.numpy().reshape(5, 2, 21, 3), valid.numpy().reshape(5, 2, 21)
    e = np.linalg.norm((y - y[:, :, 20:21]) - (x - x[:, :, 20:21]), axis=-1)
    mask = v * v[:, :, 20:21]
    assert m.compute().item() == pytest.approx((e * mask).sum() / mask.sum(), rel=1e-5)
    # translating a whole hand does not change the root-relative error
    m2 = MPJPE()
    m2.update(Y + torch.tensor([10.0, -5, 30], dtype=torch.float64), X, valid)
    assert m2.compute().item() == pytest.approx(m.compute().item(), rel=1e-6)


def test_sum_count_states_merge_like_one_batch():
    X, Y = _joints(6, 0), _joints(6, 1)
    valid = torch.ones(6, 42)
    valid[3:, 21:] = 0
    whole, parts = MPJPE(), MPJPE()
    whole.update(Y, X, valid)
    parts.update(Y[:3], X[:3], valid[:3])
    parts.update(Y[3:], X[3:], valid[3:])
    assert parts.compute().item() == pytest.approx(whole.compute().item(), rel=1e-6)
    # unequal-sized batches are weighted by joints, not by batches
    assert parts.count.item() == valid.reshape(6, 2, 21).sum().item()


def test_mrrpe_and_iterations():
    X = _joints(4, 0)
    Y = X.clone()
    Y[:, 21:] += torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)  # left hand shifted by 5 mm
    m = MRRPE()
    m.update(Y, X, torch.ones(4, 42))
    assert m.compute().item() == pytest.approx(5.0)
    it = MPJPE(iteration=1)
    it.update(X, X, torch.ones(4, 42), [Y, X + 7.0])
    assert it.compute().item() == pytest.approx(0.0, abs=1e-9)
    it0 = MPJPE(iteration=0)
    it0.update(X, X, torch.ones(4, 42), [Y, X])
    assert it0.compute().item() == pytest.approx(0.0, abs=1e-9)  # a rigid shift of a hand is root-relative 0


def test_mpvpe_root_relative():
    g = torch.Generator().manual_seed(5)
    J = _joints(2, 0)
    V = torch.randn(2, 2 * 50, 3, generator=g, dtype=torch.float64)
    m = MPVPE()
    shift = torch.tensor([5.0, 0, 0], dtype=torch.float64)
    m.update(V + shift, V, J + shift, J, torch.ones(2, 2))
    assert m.compute().item() == pytest.approx(0.0, abs=1e-9)
    m2 = MPVPE()
    V2 = V.clone()
    V2[:, :50] += torch.tensor([0, 2.0, 0], dtype=torch.float64)
    m2.update(V2, V, J, J, torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
    assert m2.compute().item() == pytest.approx(2.0 * 100 / 150)
