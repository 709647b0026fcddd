"""``MANOLayer``: the MANO hand model from its published equations (shape/pose blend shapes, joint regression,
forward kinematics, linear blend skinning), reading the user-supplied ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``.

The model files are not distributed with visionkit (the MANO licence forbids it): register at
https://mano.is.tue.mpg.de, download "Models & Code" and put ``MANO_RIGHT.pkl`` and ``MANO_LEFT.pkl`` in one
folder, the ``mano_dir`` of the task config. The pickles are read without chumpy installed: chumpy arrays are
restored as plain numpy arrays.

The pickles are read by a restricted unpickler: it resolves only numpy arrays and dtypes, scipy.sparse
matrices and chumpy objects (mapped to a plain stand-in whose value is the pickled ``x``); any other global a
file names (``os.system``, ``builtins.eval``, ...) is refused with a :class:`~visionkit.errors.DataError`
naming the file and the global, before anything in the file is called.

Joints: the 16 articulated joints of the file's kinematic tree plus five fingertip vertices, returned in the
InterHand2.6M order (:mod:`visionkit.tasks.hands.kinematics`; ``docs/hands.md`` maps it to manopth's and
smplx's orders).
"""

from __future__ import annotations

import copyreg
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from visionkit.errors import DataError
from visionkit.ops.precision import float32_ops
from visionkit.ops.rotations import axis_angle_to_matrix
from visionkit.tasks.hands.kinematics import MANO_TO_INTERHAND, forward_kinematics
from visionkit.tasks.hands.procedural import HandOutput

#: vertex ids of the thumb, index, middle, ring and pinky fingertips on the MANO mesh, per side: the right
#: hand's middle tip is vertex 444 and the left hand's 445 (the convention of manopth and of InterHand2.6M's
#: MANO fits)
DEFAULT_TIP_IDS = {"right": (745, 317, 444, 556, 673), "left": (745, 317, 445, 556, 673)}
_REQUIRED = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f",
             "hands_components", "hands_mean")
NUM_JOINTS = 16  # articulated joints of the MANO tree (wrist + 15)


class _ChumpyArray:
    """Stand-in for chumpy classes while unpickling: keeps the pickled state (the value lives in ``x``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


_NUMPY_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}
_SPARSE_NAMES = {"csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array"}


def _encode_latin1(text: str, encoding: str = "latin1") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"unexpected byte encoding {encoding!r}")
    return text.encode("latin1")


class _Unpickler(pickle.Unpickler):
    """Resolves only numpy arrays/dtypes, scipy.sparse matrices and chumpy objects (as :class:`_ChumpyArray`)."""

    def __init__(self, fh: Any, path: Path) -> None:
        super().__init__(fh, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "chumpy":
            return _ChumpyArray
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        if module.startswith("scipy.sparse") and name in _SPARSE_NAMES:
            import scipy.sparse

            return getattr(scipy.sparse, name)
        if (module, name) in (("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor")):
            return copyreg._reconstructor  # protocol 0/1 objects: the class itself still passes this filter
        if (module, name) == ("_codecs", "encode"):
            return _encode_latin1  # protocol-2 pickles written by Python 3 store bytes as codecs.encode(str)
        if (module, name) in (("__builtin__", "object"), ("builtins", "object")):
            return object
        raise DataError(f"{self.path}: refusing to load the global {module}.{name}: a MANO pickle holds only "
                        "numpy arrays, scipy.sparse matrices and chumpy arrays")


def _to_numpy(value: Any, key: str, path: Path) -> np.ndarray:
    if isinstance(value, _ChumpyArray):
        state = value.state
        if isinstance(state, dict) and "x" in state:
            return np.asarray(state["x"])
        raise DataError(f"{path}: {key!r} is a derived chumpy expression that cannot be read without chumpy; "
                        "install chumpy or re-save the pickle with numpy arrays")
    if hasattr(value, "toarray"):  # scipy.sparse
        return value.toarray()
    return np.asarray(value)


def load_mano_pickle(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a MANO model pickle into numpy arrays (``J_regressor`` densified), without needing chumpy."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = _Unpickler(fh, path).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ModuleNotFoundError) as e:
        raise DataError(f"{path}: not a readable MANO pickle ({e})") from e
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict of MANO arrays, got {type(data).__name__}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise DataError(f"{path}: missing MANO fields {missing}")
    return {k: _to_numpy(data[k], k, path) for k in _REQUIRED}


def _check_model_shapes(d: dict[str, np.ndarray], path: Path) -> None:
    """One-line :class:`DataError` naming the first field whose shape does not fit a MANO model."""
    V = d["v_template"].shape[0] if d["v_template"].ndim == 2 else -1
    expected = {
        "v_template": ((V, 3), "(V, 3)"),
        "shapedirs": ((V, 3, None), f"({V}, 3, >= {MANOLayer.num_betas})"),
        "posedirs": ((V, 3, 9 * (NUM_JOINTS - 1)), f"({V}, 3, {9 * (NUM_JOINTS - 1)})"),
        "J_regressor": ((NUM_JOINTS, V), f"({NUM_JOINTS}, {V})"),
        "weights": ((V, NUM_JOINTS), f"({V}, {NUM_JOINTS})"),
        "kintree_table": ((2, NUM_JOINTS), f"(2, {NUM_JOINTS})"),
        "f": ((None, 3), "(F, 3)"),
        "hands_components": ((None, 3 * (NUM_JOINTS - 1)), f"(<= 45, {3 * (NUM_JOINTS - 1)})"),
        "hands_mean": ((3 * (NUM_JOINTS - 1),), f"({3 * (NUM_JOINTS - 1)},)"),
    }
    for key, (shape, text) in expected.items():
        got = d[key].shape
        if key == "hands_mean" and d[key].size == shape[0]:
            continue  # (1, 45) and (45,) both occur
        ok = len(got) == len(shape) and all(e is None or g == e for g, e in zip(got, shape)) and V > 0
        if key == "shapedirs" and ok:
            ok = got[2] >= MANOLayer.num_betas
        if not ok:
            raise DataError(f"{path}: field {key!r} has shape {tuple(got)}, expected {text}")


def model_side(v_template: np.ndarray, J_regressor: np.ndarray) -> str:
    """Which hand a MANO model is, from its rest pose: ``"right"`` if the fingers lie towards -x of the wrist.

    The released right model has its rest wrist at x = +0.096 m and the finger joints at smaller x; the left
    model is its mirror image (x -> -x). The test is the sign of ``J_0,x - mean_k J_k,x`` over the rest joints
    ``J = J_regressor @ v_template``.
    """
    J = J_regressor @ v_template
    return "right" if J[0, 0] - J[1:, 0].mean() > 0 else "left"


def resolve_mano_path(model_path: str | os.PathLike | None, side: str) -> Path:
    """``model_path`` may be a ``.pkl`` file or the folder holding ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``."""
    name = f"MANO_{side.upper()}.pkl"
    if model_path is None:
        raise FileNotFoundError("model.init_args.mano_dir: no MANO folder given; download MANO from "
                                "https://mano.is.tue.mpg.de (licence required) and put MANO_RIGHT.pkl and "
                                "MANO_LEFT.pkl in a folder, then set mano_dir to it")
    p = Path(model_path).expanduser()
    file = p if p.suffix == ".pkl" else p / name
    if not file.is_file():
        raise FileNotFoundError(f"model.init_args.mano_dir: {file} not found; download MANO from "
                                f"https://mano.is.tue.mpg.de (licence required; it is never shipped with "
                                f"visionkit) and put MANO_RIGHT.pkl and MANO_LEFT.pkl in {file.parent}")
    return file


class MANOLayer(nn.Module):
    """The MANO hand model.

    ``v_shaped = T + S β``; ``J = J_reg v_shaped``; ``v_posed = v_shaped + P (R(θ)_{1:} − I)``; global joint
    transforms by forward kinematics; vertices by linear blend skinning with the rest joints removed:
    ``v = Σ_k w_k (G_k [v_posed; 1] − G_k [J_k; 0])``.

    Args:
        model_path: folder with ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``, or one ``.pkl`` file.
        side: ``"right"`` or ``"left"``.
        use_pca: ``hand_pose`` holds PCA coefficients of ``hands_components`` instead of 45 axis-angles.
        num_pca_comps: number of PCA coefficients (``use_pca``).
        flat_hand_mean: if False, ``hands_mean`` is added to the pose (the MANO default).
        fix_left_shapedirs: negate ``shapedirs[:, 0, :]`` of the left model (a known defect of the release).
        tip_ids: vertex ids of the thumb, index, middle, ring and pinky tips (default
            :data:`DEFAULT_TIP_IDS` of ``side``).
        scale: output units per model unit (1000: metres to mm).
        dtype: floating type of the model arrays (float64 for exact comparisons).
    """

    num_betas = 10

    def __init__(self, model_path: str | os.PathLike | None, side: str = "right", use_pca: bool = False,
                 num_pca_comps: int = 45, flat_hand_mean: bool = False, fix_left_shapedirs: bool = False,
                 tip_ids: Sequence[int] | None = None, scale: float = 1000.0,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if side not in ("right", "left"):
            raise ValueError(f"side must be 'right' or 'left', got {side!r}")
        path = resolve_mano_path(model_path, side)
        d = load_mano_pickle(path)
        _check_model_shapes(d, path)
        V = d["v_template"].shape[0]
        found = model_side(d["v_template"], d["J_regressor"])
        if found != side:
            raise DataError(f"{path}: loaded as side={side!r} but its rest pose is a {found} hand (fingers towards "
                            f"{'-x' if found == 'right' else '+x'} of the wrist); use MANO_{side.upper()}.pkl")
        if use_pca and not 1 <= num_pca_comps <= d["hands_components"].shape[0]:
            raise ValueError(f"num_pca_comps must be in [1, {d['hands_components'].shape[0]}], got {num_pca_comps}")
        tip_ids = DEFAULT_TIP_IDS[side] if tip_ids is None else tuple(tip_ids)
        if len(tip_ids) != 5 or min(tip_ids) < 0 or max(tip_ids) >= V:
            raise ValueError(f"tip_ids must be 5 vertex ids in [0, {V}), got {list(tip_ids)}")
        self.side, self.use_pca, self.flat_hand_mean, self.scale = side, use_pca, flat_hand_mean, scale
        self.num_pca_comps = num_pca_comps
        shapedirs = d["shapedirs"][:, :, : self.num_betas].astype(np.float64).copy()
        if fix_left_shapedirs and side == "left":
            shapedirs[:, 0, :] *= -1
        ids = d["kintree_table"][1].astype(np.int64)
        index = {int(j): i for i, j in enumerate(ids)}
        self.parents = [index.get(int(p), -1) if i > 0 else -1 for i, p in enumerate(d["kintree_table"][0])]

        def buf(name: str, arr: np.ndarray, kind: torch.dtype = dtype) -> None:
            self.register_buffer(name, torch.as_tensor(np.asarray(arr), dtype=kind), persistent=False)

        buf("v_template", d["v_template"])
        buf("shapedirs", shapedirs)
        buf("posedirs", d["posedirs"])
        buf("J_regressor", d["J_regressor"])
        buf("lbs_weights", d["weights"])
        buf("faces", d["f"].astype(np.int64), torch.long)
        buf("hands_components", d["hands_components"])
        buf("hands_mean", d["hands_mean"].reshape(-1))
        buf("tip_ids", np.asarray(tip_ids), torch.long)

    def _check_inputs(self, global_orient: Tensor, hand_pose: Tensor, betas: Tensor | None,
                      transl: Tensor | None) -> None:
        """One-line ``ValueError`` naming the input, its shape and the expected shape."""
        width = self.num_pca_comps if self.use_pca else 45
        why = f" (use_pca with num_pca_comps={width})" if self.use_pca else ""
        if hand_pose.dim() != 2 or hand_pose.shape[1] != width:
            raise ValueError(f"hand_pose has shape {tuple(hand_pose.shape)}, expected (B, {width}){why}")
        B = hand_pose.shape[0]
        if tuple(global_orient.shape) not in ((B, 3), (B, 3, 3)):
            raise ValueError(f"global_orient has shape {tuple(global_orient.shape)}, expected ({B}, 3) or ({B}, 3, 3)")
        for name, x, n in (("betas", betas, self.num_betas), ("transl", transl, 3)):
            if x is not None and tuple(x.shape) != (B, n):
                raise ValueError(f"{name} has shape {tuple(x.shape)}, expected ({B}, {n})")

    @float32_ops  # kinematics and skinning stay float32 under autocast
    def forward(self, global_orient: Tensor, hand_pose: Tensor, betas: Tensor | None = None,
                transl: Tensor | None = None) -> HandOutput:
        """Pose and shape the hand.

        Args:
            global_orient: ``(B, 3)`` axis-angle or ``(B, 3, 3)`` rotation of the root.
            hand_pose: ``(B, 45)`` axis-angle of the 15 finger joints, or ``(B, num_pca_comps)`` with ``use_pca``.
            betas: ``(B, 10)`` shape coefficients (zeros if None).
            transl: ``(B, 3)`` translation in model units (metres), added before ``scale``.

        Returns:
            :class:`HandOutput`: ``vertices (B, 778, 3)`` and ``joints (B, 21, 3)`` (InterHand order, tips from
            vertices), times ``scale``.
        """
        self._check_inputs(global_orient, hand_pose, betas, transl)
        B = hand_pose.shape[0]
        dt = self.v_template.dtype
        hand_pose = hand_pose.to(dt)
        if betas is None:
            betas = hand_pose.new_zeros(B, self.num_betas)
        betas = betas.to(dt)
        if self.use_pca:
            hand_pose = hand_pose @ self.hands_components[: self.num_pca_comps]
        if not self.flat_hand_mean:
            hand_pose = hand_pose + self.hands_mean
        R0 = global_orient.to(dt) if global_orient.dim() == 3 else axis_angle_to_matrix(global_orient.to(dt))
        rot = torch.cat([R0[:, None], axis_angle_to_matrix(hand_pose.reshape(B, 15, 3))], 1)  # (B, 16, 3, 3)
        v_shaped = self.v_template + torch.einsum("vck,bk->bvc", self.shapedirs, betas)
        J = torch.einsum("jv,bvc->bjc", self.J_regressor, v_shaped)  # (B, 16, 3)
        eye = torch.eye(3, dtype=dt, device=rot.device)
        pose_feature = (rot[:, 1:] - eye).reshape(B, 135)
        v_posed = v_shaped + torch.einsum("vck,bk->bvc", self.posedirs, pose_feature)
        posed_joints, G = forward_kinematics(rot, J, self.parents)
        # remove the rest-pose joint location so that G acts on rest-pose vertices
        A = torch.cat([G[..., :3, :3], (G[..., :3, 3] - (G[..., :3, :3] @ J[..., None])[..., 0])[..., None]], -1)
        T = torch.einsum("vj,bjxy->bvxy", self.lbs_weights, A)  # (B, V, 3, 4)
        verts = (T[..., :3] @ v_posed[..., None])[..., 0] + T[..., 3]
        joints = torch.cat([posed_joints, verts[:, self.tip_ids]], 1)[:, MANO_TO_INTERHAND]
        if transl is not None:
            verts = verts + transl[:, None].to(dt)
            joints = joints + transl[:, None].to(dt)
        return HandOutput(verts * self.scale, joints * self.scale)
