"""Orderings: passes, anti-diagonal groups, the training mask and the predictor table against brute force."""

import itertools

import numpy as np
import pytest
import torch

from visionkit.tasks.generation.ordering import Ordering


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 16])
def test_passes_nar_2n_minus_1_raster_n_squared(n):
    assert Ordering((n, n), "nar").num_groups == 2 * n - 1
    assert Ordering((n, n), "raster").num_groups == n * n


def test_passes_3d():
    assert Ordering((3, 4, 5), "nar").num_groups == 3 + 4 + 5 - 2
    assert Ordering((3, 4, 5), "raster").num_groups == 60


@pytest.mark.parametrize("shape", [(4, 4), (3, 6), (2, 3, 4)])
def test_nar_groups_are_manhattan_shells(shape):
    o = Ordering(shape, "nar")
    cells = list(itertools.product(*[range(s) for s in shape]))  # raster order
    for c, toks in enumerate(o.group_tokens):
        expected = sorted(k for k, x in enumerate(cells) if sum(x) == c)
        assert sorted(toks.tolist()) == expected


@pytest.mark.parametrize("kind,shape", [("nar", (4, 5)), ("raster", (3, 4)), ("nar", (2, 3, 3))])
def test_mask_is_group_k_le_group_q(kind, shape):
    o = Ordering(shape, kind)
    cells = list(itertools.product(*[range(s) for s in shape]))
    grp = [-1] + [sum(x) if kind == "nar" else t for t, x in enumerate(cells)]
    L = len(grp)
    ref = np.array([[grp[k] <= grp[q] for k in range(L)] for q in range(L)])
    assert np.array_equal(o.attention_mask().numpy(), ref)
    if kind == "raster":
        assert np.array_equal(ref, np.tril(np.ones((L, L), dtype=bool)))


def test_nar_predictor_table_brute_force():
    h, w = 4, 5
    o = Ordering((h, w), "nar")
    seq = {(i, j): 1 + i * w + j for i in range(h) for j in range(w)}
    for t, (i, j) in enumerate(itertools.product(range(h), range(w))):
        got = {(int(o.pred_index[t, a]), a) for a in range(2) if o.pred_valid[t, a]}
        if (i, j) == (0, 0):
            exp = {(0, 0), (0, 1)}  # both heads at the prefix
        else:
            exp = set()
            if j > 0:
                exp.add((seq[(i, j - 1)], 0))  # horizontal head at the left neighbour
            if i > 0:
                exp.add((seq[(i - 1, j)], 1))  # vertical head at the upper neighbour
        assert got == exp, (i, j)
    w_ = o.pred_weight()
    assert torch.allclose(w_.sum(1), torch.ones(h * w))


def test_raster_predictor_is_previous_position():
    o = Ordering((3, 3), "raster")
    assert o.pred_index[:, 0].tolist() == list(range(9))  # token t <- sequence index t (token t - 1; 0 = prefix)


def test_every_predictor_is_in_previous_group():
    for kind, shape in [("nar", (5, 7)), ("raster", (4, 4)), ("nar", (3, 3, 4))]:
        o = Ordering(shape, kind)
        g = o.seq_group()
        for t in range(o.num_tokens):
            for a in range(o.num_heads):
                if o.pred_valid[t, a]:
                    assert g[o.pred_index[t, a]] == o.group[t] - 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="ordering"):
        Ordering((4, 4), "zigzag")
    with pytest.raises(ValueError, match="grid shape"):
        Ordering((4,), "nar")
