"""MD17 molecular dynamics: atom trajectories from the ``.npz`` release, hydrogens dropped.

An MD17 file (e.g. ``md17_aspirin.npz``) holds ``R (n_frames, n_atoms, 3)`` positions in Å, ``z (n_atoms,)``
atomic numbers and optionally ``E`` energies and ``F`` forces (not used for prediction). Atoms with ``z == 1``
are dropped. The frames are split in time 5 : 1 : 2 (train, val, test, in that order, so no window straddles
two splits); a sample observes ``past_len`` frames ``frame_gap`` apart and predicts the next ``future_len``
(10 -> 10 with a gap of 20 by default). Windows start every ``stride`` frames.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from visionkit.datamodules.base import BaseDataModule
from visionkit.datamodules.motion.common import TrajectoryDataset
from visionkit.errors import DataError, DatasetNotFoundError

MOLECULES = ("aspirin", "benzene", "ethanol", "malonaldehyde", "naphthalene", "salicylic", "toluene", "uracil")


def read_md17(path: str | Path, drop_hydrogens: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read positions ``(n_frames, n_atoms, 3)`` float32 and atomic numbers ``(n_atoms,)`` from an MD17 ``.npz``.

    Raises:
        DataError: naming the file and the offending array (missing ``R``/``z``, wrong shapes, non-finite).
    """
    path = Path(path)
    try:
        z_file = np.load(path, allow_pickle=False)
        with z_file:
            for key in ("R", "z"):
                if key not in z_file.files:
                    raise DataError(f"{path}: missing array {key!r} (found {', '.join(z_file.files) or 'none'})")
            R, z = z_file["R"], z_file["z"].reshape(-1)
            n = R.shape[1] if R.ndim == 3 else -1
            for key in ("E", "F"):
                if key in z_file.files and z_file[key].shape[0] != R.shape[0]:
                    raise DataError(f"{path}: array {key!r} has {z_file[key].shape[0]} frames, 'R' has {R.shape[0]}")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz archive, truncated or damaged? ({err})") from None
    if R.ndim != 3 or R.shape[2] != 3:
        raise DataError(f"{path}: array 'R' must be (n_frames, n_atoms, 3), got {R.shape}")
    if z.shape[0] != n:
        raise DataError(f"{path}: array 'z' has {z.shape[0]} atoms, 'R' has {n}")
    if not np.isfinite(R).all():
        frame = int(np.nonzero(~np.isfinite(R).all((1, 2)))[0][0])
        raise DataError(f"{path}: array 'R' frame {frame}: non-finite position")
    keep = z != 1 if drop_hydrogens else np.ones_like(z, dtype=bool)
    return R[:, keep].astype(np.float32), z[keep]


def md17_windows(R: np.ndarray, past_len: int, future_len: int, frame_gap: int, stride: int) -> torch.Tensor:
    """Windows ``(N, n_atoms, past_len + future_len, 3)`` of frames ``frame_gap`` apart, starting every ``stride``."""
    span = (past_len + future_len - 1) * frame_gap
    starts = np.arange(0, R.shape[0] - span, stride)
    idx = starts[:, None] + frame_gap * np.arange(past_len + future_len)[None]
    return torch.from_numpy(R[idx].transpose(0, 2, 1, 3).copy())


class MD17(BaseDataModule):
    """One MD17 molecule: ``past (B, n_heavy, 10, 3)`` -> ``future (B, n_heavy, 10, 3)`` in Å.

    Args:
        root: folder of the ``.npz`` files (``data.init_args.root``).
        molecule: aspirin, benzene, ethanol, malonaldehyde, naphthalene, salicylic, toluene or uracil; the file is
            ``<root>/md17_<molecule>.npz`` (or ``<root>/<molecule>.npz``).
        past_len: observed frames.
        future_len: predicted frames.
        frame_gap: MD steps between consecutive frames of a sample.
        stride: frames between window starts.
        split: relative sizes of train, val, test (consecutive in time).
        **kwargs: ``batch_size``, ``num_workers``, ``seed``, ``pin_memory``.
    """

    def __init__(self, root: str = "data/md17", molecule: str = "aspirin", past_len: int = 10, future_len: int = 10,
                 frame_gap: int = 20, stride: int = 100, split: tuple[int, int, int] = (5, 1, 2), **kwargs) -> None:
        super().__init__(**kwargs)
        if molecule not in MOLECULES:
            raise ValueError(f"data.init_args.molecule: expected one of {MOLECULES}, got {molecule!r}")
        self.root, self.molecule = root, molecule
        self.past_len, self.future_len, self.frame_gap, self.stride = past_len, future_len, frame_gap, stride
        self.split = tuple(split)

    def file(self) -> Path:
        root = self.check_path(self.root, "data.init_args.root")
        for name in (f"md17_{self.molecule}.npz", f"{self.molecule}.npz"):
            if (root / name).exists():
                return root / name
        raise DatasetNotFoundError(f"data.init_args.molecule: neither md17_{self.molecule}.npz nor "
                                   f"{self.molecule}.npz in {root}")

    def setup(self, stage: str | None = None) -> None:
        R, _ = read_md17(self.file())
        bounds = np.round(np.cumsum([0, *self.split]) / sum(self.split) * R.shape[0]).astype(int)
        sets = []
        for name, a, b in zip(("train", "val", "test"), bounds[:-1], bounds[1:]):
            w = md17_windows(R[a:b], self.past_len, self.future_len, self.frame_gap, self.stride)
            if len(w) == 0:
                raise DataError(f"{self.file()}: the {name} split ({b - a} frames) is shorter than one window of "
                                f"{(self.past_len + self.future_len - 1) * self.frame_gap + 1} frames")
            sets.append(TrajectoryDataset(w[:, :, :self.past_len], w[:, :, self.past_len:]))
        self.train_dataset, self.val_dataset, self.test_dataset = sets
