"""MANOLayer against an independent numpy linear-blend-skinning reference on a random MANO-format pickle."""

import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch
from scipy.spatial.transform import Rotation

from visionkit.errors import DataError
from visionkit.tasks.hands.kinematics import MANO_PARENTS
from visionkit.tasks.hands.mano import MANOLayer, load_mano_pickle

V = 778


def _random_mano(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    v_template = rng.normal(scale=0.05, size=(V, 3))
    J_reg = rng.random((16, V)) * (rng.random((16, V)) < 0.02)
    J_reg[np.arange(16), rng.integers(0, V, 16)] += 1.0
    J_reg /= J_reg.sum(1, keepdims=True)
    w = rng.random((V, 16)) ** 4
    w /= w.sum(1, keepdims=True)
    comps = np.linalg.qr(rng.normal(size=(45, 45)))[0]
    kintree = np.array([[4294967295] + MANO_PARENTS[1:], list(range(16))], dtype=np.int64)
    return {
        "v_template": v_template,
        "shapedirs": rng.normal(scale=0.01, size=(V, 3, 10)),
        "posedirs": rng.normal(scale=0.01, size=(V, 3, 135)),
        "J_regressor": scipy.sparse.csc_matrix(J_reg),
        "weights": w,
        "kintree_table": kintree,
        "f": rng.integers(0, V, size=(1538, 3)).astype(np.uint32),
        "hands_components": comps,
        "hands_mean": rng.normal(scale=0.2, size=45),
    }


def _write_with_fake_chumpy(path, data: dict) -> None:
    """Pickle ``shapedirs`` as a chumpy ``Ch`` object (value in ``x``), as the released files do."""
    mod = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")

    class Ch:
        pass

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    ch.Ch = Ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = mod, ch
    try:
        obj = Ch()
        obj.x = data["shapedirs"]
        with open(path, "wb") as fh:
            pickle.dump({**data, "shapedirs": obj, "bs_style": "lbs"}, fh, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


def _reference(d: dict, global_orient, pose45, betas, transl, tips) -> tuple[np.ndarray, np.ndarray]:
    """Plain numpy MANO, one sample, loops over joints."""
    J_reg = d["J_regressor"].toarray()
    v_shaped = d["v_template"] + d["shapedirs"] @ betas
    J = J_reg @ v_shaped
    rots = Rotation.from_rotvec(np.concatenate([global_orient, pose45]).reshape(16, 3)).as_matrix()
    feat = np.concatenate([(rots[k] - np.eye(3)).ravel() for k in range(1, 16)])
    v_posed = v_shaped + d["posedirs"] @ feat
    G = []
    for k in range(16):
        T = np.eye(4)
        T[:3, :3] = rots[k]
        p = MANO_PARENTS[k]
        T[:3, 3] = J[k] - (J[p] if p >= 0 else 0)
        G.append(T if p < 0 else G[p] @ T)
    verts = np.zeros((V, 3))
    for k in range(16):
        A = G[k].copy()
        A[:3, 3] -= G[k][:3, :3] @ J[k]
        verts += d["weights"][:, k : k + 1] * (v_posed @ A[:3, :3].T + A[:3, 3])
    joints = np.stack([g[:3, 3] for g in G] + [verts[i] for i in tips])
    order = [16, 15, 14, 13, 17, 3, 2, 1, 18, 6, 5, 4, 19, 12, 11, 10, 20, 9, 8, 7, 0]
    return (verts + transl) * 1000, (joints[order] + transl) * 1000


@pytest.fixture
def mano_dir(tmp_path):
    for side, seed in (("RIGHT", 0), ("LEFT", 1)):
        _write_with_fake_chumpy(tmp_path / f"MANO_{side}.pkl", _random_mano(seed))
    return tmp_path


def test_loads_without_chumpy(mano_dir):
    assert "chumpy" not in sys.modules
    d = load_mano_pickle(mano_dir / "MANO_RIGHT.pkl")
    np.testing.assert_array_equal(d["shapedirs"], _random_mano(0)["shapedirs"])
    assert d["J_regressor"].shape == (16, V)


@pytest.mark.parametrize("use_pca", [False, True])
@pytest.mark.parametrize("flat_hand_mean", [False, True])
def test_matches_numpy_reference(mano_dir, use_pca, flat_hand_mean):
    d = _random_mano(0)
    layer = MANOLayer(mano_dir, "right", use_pca=use_pca, num_pca_comps=12, flat_hand_mean=flat_hand_mean,
                      dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    B = 3
    go = torch.randn(B, 3, generator=g, dtype=torch.float64)
    hp = torch.randn(B, 12 if use_pca else 45, generator=g, dtype=torch.float64) * 0.5
    betas = torch.randn(B, 10, generator=g, dtype=torch.float64)
    transl = torch.randn(B, 3, generator=g, dtype=torch.float64) * 0.1
    out = layer(go, hp, betas, transl)
    assert out.vertices.shape == (B, V, 3) and out.joints.shape == (B, 21, 3)
    for b in range(B):
        pose45 = hp[b].numpy() @ d["hands_components"][:12] if use_pca else hp[b].numpy()
        if not flat_hand_mean:
            pose45 = pose45 + d["hands_mean"]
        v_ref, j_ref = _reference(d, go[b].numpy(), pose45, betas[b].numpy(), transl[b].numpy(),
                                  (745, 317, 445, 556, 673))
        np.testing.assert_allclose(out.vertices[b].numpy(), v_ref, atol=1e-6)
        np.testing.assert_allclose(out.joints[b].numpy(), j_ref, atol=1e-6)


def test_matrix_orient_and_left_fix(mano_dir):
    d = _random_mano(1)
    layer = MANOLayer(mano_dir, "left", fix_left_shapedirs=True, flat_hand_mean=True, dtype=torch.float64)
    go = torch.randn(2, 3, dtype=torch.float64)
    hp = torch.randn(2, 45, dtype=torch.float64) * 0.3
    betas = torch.randn(2, 10, dtype=torch.float64)
    R = torch.from_numpy(Rotation.from_rotvec(go.numpy()).as_matrix())
    a, b = layer(go, hp, betas), layer(R, hp, betas)
    assert (a.vertices - b.vertices).abs().max() < 1e-9
    d["shapedirs"][:, 0, :] *= -1
    v_ref, _ = _reference(d, go[0].numpy(), hp[0].numpy(), betas[0].numpy(), np.zeros(3), (745, 317, 445, 556, 673))
    np.testing.assert_allclose(a.vertices[0].numpy(), v_ref, atol=1e-6)


def test_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="MANO_RIGHT.pkl and MANO_LEFT.pkl"):
        MANOLayer(tmp_path, "right")
    with pytest.raises(FileNotFoundError, match="mano_dir"):
        MANOLayer(None, "left")
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(pickle.dumps({"v_template": np.zeros((V, 3))}))
    with pytest.raises(DataError, match="missing MANO fields"):
        MANOLayer(tmp_path, "right")
