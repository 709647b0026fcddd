"""MANOLayer against an independent numpy linear-blend-skinning reference on a random MANO-format pickle, its
input checks and the restricted unpickler."""

import os
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
from visionkit.tasks.hands.mano import DEFAULT_TIP_IDS, MANOLayer, load_mano_pickle, model_side

V = 778
RIGHT_TIPS, LEFT_TIPS = (745, 317, 444, 556, 673), (745, 317, 445, 556, 673)


def _random_mano(seed: int, side: str = "right") -> dict:
    rng = np.random.default_rng(seed)
    v_template = rng.normal(scale=0.05, size=(V, 3))
    J_reg = rng.random((16, V)) * (rng.random((16, V)) < 0.02)
    J_reg[np.arange(16), rng.integers(0, V, 16)] += 1.0
    J_reg /= J_reg.sum(1, keepdims=True)
    # the released right model has its rest wrist 0.05-0.1 m towards +x of the finger joints; left = mirror
    g = J_reg[0] - J_reg[1:].mean(0)
    v_template[:, 0] += g * (0.08 - g @ v_template[:, 0]) / (g @ g)
    if side == "left":
        v_template[:, 0] *= -1
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
    """Plain numpy MANO, one sample: vertices and the 21 joints in our order, millimetres."""
    verts, tree = _reference_tree(d, global_orient, pose45, betas)
    joints = np.concatenate([tree, verts[list(tips)]])
    order = [16, 15, 14, 13, 17, 3, 2, 1, 18, 6, 5, 4, 19, 12, 11, 10, 20, 9, 8, 7, 0]
    return (verts + transl) * 1000, (joints[order] + transl) * 1000


@pytest.fixture(scope="module")
def mano_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("mano")
    for side, seed in (("right", 0), ("left", 1)):
        _write_with_fake_chumpy(path / f"MANO_{side.upper()}.pkl", _random_mano(seed, side))
    return path


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
        v_ref, j_ref = _reference(d, go[b].numpy(), pose45, betas[b].numpy(), transl[b].numpy(), RIGHT_TIPS)
        np.testing.assert_allclose(out.vertices[b].numpy(), v_ref, atol=1e-6)
        np.testing.assert_allclose(out.joints[b].numpy(), j_ref, atol=1e-6)


def test_matrix_orient_and_left_fix(mano_dir):
    d = _random_mano(1, "left")
    layer = MANOLayer(mano_dir, "left", fix_left_shapedirs=True, flat_hand_mean=True, dtype=torch.float64)
    go = torch.randn(2, 3, dtype=torch.float64)
    hp = torch.randn(2, 45, dtype=torch.float64) * 0.3
    betas = torch.randn(2, 10, dtype=torch.float64)
    R = torch.from_numpy(Rotation.from_rotvec(go.numpy()).as_matrix())
    a, b = layer(go, hp, betas), layer(R, hp, betas)
    assert (a.vertices - b.vertices).abs().max() < 1e-9
    d["shapedirs"][:, 0, :] *= -1
    v_ref, j_ref = _reference(d, go[0].numpy(), hp[0].numpy(), betas[0].numpy(), np.zeros(3), LEFT_TIPS)
    np.testing.assert_allclose(a.vertices[0].numpy(), v_ref, atol=1e-6)
    np.testing.assert_allclose(a.joints[0].numpy(), j_ref, atol=1e-6)


def test_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="MANO_RIGHT.pkl and MANO_LEFT.pkl"):
        MANOLayer(tmp_path, "right")
    with pytest.raises(FileNotFoundError, match="mano_dir"):
        MANOLayer(None, "left")
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(pickle.dumps({"v_template": np.zeros((V, 3))}))
    with pytest.raises(DataError, match="missing MANO fields"):
        MANOLayer(tmp_path, "right")


# ---------------------------------------------------------------------------------------------- fingertips
def test_fingertips_per_side_and_override(mano_dir):
    assert DEFAULT_TIP_IDS == {"right": RIGHT_TIPS, "left": LEFT_TIPS}
    for side in ("right", "left"):
        layer = MANOLayer(mano_dir, side, dtype=torch.float64)
        hp = torch.randn(2, 45, dtype=torch.float64) * 0.3
        out = layer(torch.zeros(2, 3, dtype=torch.float64), hp)
        tips = out.vertices[:, list(RIGHT_TIPS if side == "right" else LEFT_TIPS)]
        # InterHand order: tips at 0, 4, 8, 12, 16 (thumb, index, middle, ring, pinky)
        torch.testing.assert_close(out.joints[:, [0, 4, 8, 12, 16]], tips)
    custom = (1, 2, 3, 4, 5)
    layer = MANOLayer(mano_dir, "right", tip_ids=custom, dtype=torch.float64)
    out = layer(torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 45, dtype=torch.float64))
    torch.testing.assert_close(out.joints[:, [0, 4, 8, 12, 16]], out.vertices[:, list(custom)])
    with pytest.raises(ValueError, match="tip_ids must be 5 vertex ids"):
        MANOLayer(mano_dir, "right", tip_ids=(1, 2, 3, 4, V))


def test_documented_orders_of_manopth_and_smplx(mano_dir):
    """docs/hands.md: ours = manopth[:, MANOPTH_TO_OURS] and ours = cat(smplx 16 joints, tips)[:, MANO_TO_INTERHAND]."""
    layer = MANOLayer(mano_dir, "right", dtype=torch.float64)
    d = _random_mano(0)
    go, hp = np.array([0.2, -0.4, 0.1]), np.random.default_rng(5).normal(scale=0.3, size=45)
    verts, tree = _reference_tree(d, go, hp + d["hands_mean"])
    tips = verts[list(RIGHT_TIPS)]
    manopth = np.concatenate([tree, tips])[[0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]]
    ours = layer(torch.from_numpy(go)[None], torch.from_numpy(hp)[None]).joints[0].numpy()
    np.testing.assert_allclose(ours, 1000 * manopth[[4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18,
                                                     17, 0]], atol=1e-6)


def _reference_tree(d: dict, global_orient, pose45, betas=None) -> tuple[np.ndarray, np.ndarray]:
    """Plain numpy MANO, loops over joints: vertices and the 16 tree joints in the file's order (what smplx's MANO
    returns), metres."""
    v_shaped = d["v_template"] if betas is None else d["v_template"] + d["shapedirs"] @ betas
    J = d["J_regressor"].toarray() @ v_shaped
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
    verts = np.zeros((v_posed.shape[0], 3))
    for k in range(16):
        A = G[k].copy()
        A[:3, 3] -= G[k][:3, :3] @ J[k]
        verts += d["weights"][:, k : k + 1] * (v_posed @ A[:3, :3].T + A[:3, 3])
    return verts, np.stack([g[:3, 3] for g in G])


# ---------------------------------------------------------------------------------------------- model file checks
_BAD_FIELDS = [
    ("v_template", np.zeros((V, 4)), r"'v_template' has shape \(778, 4\), expected \(V, 3\)"),
    ("shapedirs", np.zeros((V, 3, 5)), r"'shapedirs' has shape \(778, 3, 5\), expected \(778, 3, >= 10\)"),
    ("shapedirs", np.zeros((V - 1, 3, 10)), r"'shapedirs' has shape \(777, 3, 10\), expected \(778, 3, >= 10\)"),
    ("posedirs", np.zeros((V, 3, 134)), r"'posedirs' has shape \(778, 3, 134\), expected \(778, 3, 135\)"),
    ("J_regressor", np.zeros((21, V)), r"'J_regressor' has shape \(21, 778\), expected \(16, 778\)"),
    ("weights", np.zeros((V, 15)), r"'weights' has shape \(778, 15\), expected \(778, 16\)"),
    ("kintree_table", np.zeros((2, 21), dtype=np.int64), r"'kintree_table' has shape \(2, 21\), expected \(2, 16\)"),
    ("hands_mean", np.zeros(48), r"'hands_mean' has shape \(48,\), expected \(45,\)"),
    ("hands_components", np.zeros((45, 48)), r"'hands_components' has shape \(45, 48\), expected"),
    ("f", np.zeros((10, 4), dtype=np.int64), r"'f' has shape \(10, 4\), expected \(F, 3\)"),
]


@pytest.mark.parametrize(("field", "value", "message"), _BAD_FIELDS, ids=[f"{f}-{v.shape}" for f, v, _ in _BAD_FIELDS])
def test_model_file_shapes_are_checked_on_load(tmp_path, field, value, message):
    data = {**_random_mano(0), field: value}
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(DataError, match=message) as e:
        MANOLayer(tmp_path, "right")
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_hands_mean_as_row_is_accepted(tmp_path):
    data = _random_mano(0)
    data["hands_mean"] = data["hands_mean"][None]
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(pickle.dumps(data))
    layer = MANOLayer(tmp_path, "right")
    assert layer.hands_mean.shape == (45,)


@pytest.mark.parametrize("swap", [("right", "left"), ("left", "right")])
def test_file_of_the_other_hand_is_refused(tmp_path, swap):
    file_side, asked = swap
    data = _random_mano(0, file_side)
    assert model_side(data["v_template"], data["J_regressor"].toarray()) == file_side
    path = tmp_path / "hand.pkl"
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(DataError, match=f"loaded as side='{asked}' but its rest pose is a {file_side} hand"):
        MANOLayer(path, asked)
    MANOLayer(path, file_side)  # the matching side loads


def test_side_test_follows_mirroring():
    """Mirroring x of any model flips the side; rotating it about x (keeping x) does not."""
    d = _random_mano(4)
    J_reg = d["J_regressor"].toarray()
    v = d["v_template"]
    R = Rotation.from_rotvec([0.7, 0, 0]).as_matrix()
    assert model_side(v, J_reg) == "right" and model_side(v @ R.T, J_reg) == "right"
    assert model_side(v * [-1, 1, 1], J_reg) == "left"


# ---------------------------------------------------------------------------------------------- forward inputs
_BAD_INPUTS = [
    # (use_pca, global_orient, hand_pose, betas, transl, message)
    (False, (2, 3), (2, 44), None, None, r"hand_pose has shape \(2, 44\), expected \(B, 45\)"),
    (False, (2, 3), (2, 48), None, None, r"hand_pose has shape \(2, 48\), expected \(B, 45\)"),
    (False, (2, 3), (2, 15, 3), None, None, r"hand_pose has shape \(2, 15, 3\), expected \(B, 45\)"),
    (True, (2, 3), (2, 12), None, None, r"hand_pose has shape \(2, 12\), expected \(B, 6\) \(use_pca with "
     r"num_pca_comps=6\)"),
    (False, (2, 4), (2, 45), None, None, r"global_orient has shape \(2, 4\), expected \(2, 3\) or \(2, 3, 3\)"),
    (False, (3, 3), (2, 45), None, None, r"global_orient has shape \(3, 3\), expected \(2, 3\)"),
    (False, (2, 3), (2, 45), (2, 9), None, r"betas has shape \(2, 9\), expected \(2, 10\)"),
    (False, (2, 3), (2, 45), (2, 16), None, r"betas has shape \(2, 16\), expected \(2, 10\)"),
    (False, (2, 3), (2, 45), (3, 10), None, r"betas has shape \(3, 10\), expected \(2, 10\)"),
    (False, (2, 3), (2, 45), None, (2, 2), r"transl has shape \(2, 2\), expected \(2, 3\)"),
]


@pytest.mark.parametrize(("use_pca", "go", "hp", "betas", "transl", "message"), _BAD_INPUTS,
                         ids=[m.split(" has")[0] + str(i) for i, (*_, m) in enumerate(_BAD_INPUTS)])
def test_forward_inputs_are_checked(mano_dir, use_pca, go, hp, betas, transl, message):
    layer = MANOLayer(mano_dir, "right", use_pca=use_pca, num_pca_comps=6)
    args = [torch.zeros(go), torch.zeros(hp), None if betas is None else torch.zeros(betas),
            None if transl is None else torch.zeros(transl)]
    with pytest.raises(ValueError, match=message):
        layer(*args)


def test_pca_uses_exactly_num_pca_comps(mano_dir):
    d = _random_mano(0)
    layer = MANOLayer(mano_dir, "right", use_pca=True, num_pca_comps=6, flat_hand_mean=True, dtype=torch.float64)
    coeffs = torch.randn(2, 6, dtype=torch.float64)
    full = MANOLayer(mano_dir, "right", flat_hand_mean=True, dtype=torch.float64)
    pose45 = coeffs @ torch.from_numpy(d["hands_components"][:6])
    go = torch.zeros(2, 3, dtype=torch.float64)
    torch.testing.assert_close(layer(go, coeffs).vertices, full(go, pose45).vertices)
    with pytest.raises(ValueError, match="num_pca_comps must be in"):
        MANOLayer(mano_dir, "right", use_pca=True, num_pca_comps=46)


# ---------------------------------------------------------------------------------------------- restricted unpickler
class _Payload:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return self.fn, (self.arg,)


@pytest.mark.parametrize(("fn", "name"), [(os.system, f"{os.system.__module__}.system"),
                                          (eval, "(__builtin__|builtins).eval")])
def test_planted_payload_does_not_run(tmp_path, fn, name):
    marker = tmp_path / "ran"
    arg = f"touch {marker}" if fn is os.system else f"open({str(marker)!r}, 'w').close()"
    data = {**_random_mano(0), "hands_mean": _Payload(fn, arg)}
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(DataError, match=f"refusing to load the global {name}") as e:
        load_mano_pickle(path)
    assert str(path) in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_restricted_unpickler_reads_every_protocol(tmp_path, protocol):
    data = _random_mano(2)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    d = load_mano_pickle(path)
    np.testing.assert_array_equal(d["J_regressor"], data["J_regressor"].toarray())
    np.testing.assert_array_equal(d["f"], data["f"])
