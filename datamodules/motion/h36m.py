"""Human3.6M in the exponential-map release, turned into 3D joint positions by forward kinematics.

Files: ``<root>/S{subject}/{action}_{subaction}.txt``, one frame per line at 50 fps, 99 comma-separated values:
the global translation (3), then one exponential-map rotation (axis * angle, radians) per joint for the 32 joints
of the skeleton, the first being the root. As in the usual prediction protocol the global translation and root
rotation are zeroed, frames are taken every second line (25 fps), positions are computed with the fixed
H3.6M bone offsets (millimetres) and the 22 moving joints are kept (the root, the hips' duplicates, the
hand/foot end sites and thumbs are dropped).

Forward kinematics, with row-vector positions: ``R_j = exp(r_j) R_parent(j)`` and
``x_j = o_j R_parent(j) + x_parent(j)``, ``x_root = 0``.

Splits: subjects 1, 6, 7, 8, 9 train, 11 validation, 5 test; samples observe 10 frames and predict 25 (1 s).
Test protocol (``test_protocol``): ``"all"`` (every window, stride ``test_stride``) or ``"sampled"``
(``test_samples_per_action`` windows per action drawn with a fixed seed from subactions 1 and 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from visionkit.datamodules.base import BaseDataModule
from visionkit.datamodules.motion.common import TrajectoryDataset
from visionkit.errors import DataError
from visionkit.ops.rotations import axis_angle_to_matrix

ACTIONS = (
    "walking",
    "eating",
    "smoking",
    "discussion",
    "directions",
    "greeting",
    "phoning",
    "posing",
    "purchases",
    "sitting",
    "sittingdown",
    "takingphoto",
    "waiting",
    "walkingdog",
    "walkingtogether",
)
PARENTS = (
    -1,
    0,
    1,
    2,
    3,
    4,
    0,
    6,
    7,
    8,
    9,
    0,
    11,
    12,
    13,
    14,
    12,
    16,
    17,
    18,
    19,
    20,
    19,
    22,
    12,
    24,
    25,
    26,
    27,
    28,
    27,
    30,
)
OFFSETS_MM = np.array(
    [
        [0, 0, 0],
        [-132.948591, 0, 0],
        [0, -442.894612, 0],
        [0, -454.206447, 0],
        [0, 0, 162.767078],
        [0, 0, 74.999437],
        [132.948826, 0, 0],
        [0, -442.894413, 0],
        [0, -454.206590, 0],
        [0, 0, 162.767426],
        [0, 0, 74.999948],
        [0, 0.1, 0],
        [0, 233.383263, 0],
        [0, 257.077681, 0],
        [0, 121.134938, 0],
        [0, 115.002227, 0],
        [0, 257.077681, 0],
        [0, 151.034226, 0],
        [0, 278.882773, 0],
        [0, 251.733451, 0],
        [0, 0, 0],
        [0, 0, 99.999627],
        [0, 100.000188, 0],
        [0, 0, 0],
        [0, 257.077681, 0],
        [0, 151.031437, 0],
        [0, 278.892924, 0],
        [0, 251.728680, 0],
        [0, 0, 0],
        [0, 0, 99.999888],
        [0, 137.499922, 0],
        [0, 0, 0],
    ]
)
DROPPED_JOINTS = (0, 1, 6, 11, 16, 20, 23, 24, 28, 31)
KEPT_JOINTS = tuple(j for j in range(32) if j not in DROPPED_JOINTS)  # the 22 predicted joints


def read_expmap_file(path: str | Path) -> np.ndarray:
    """Read an exp-map file: ``(n_frames, 99)`` float64 at the file's 50 fps.

    Raises:
        DataError: ``path:line`` for a wrong value count or a non-numeric/non-finite value.
    """
    path = Path(path)
    rows = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.strip().split(",")
            if len(fields) != 99:
                raise DataError(f"{path}:{line_no}: expected 99 comma-separated values, got {len(fields)}")
            try:
                vals = [float(v) for v in fields]
            except ValueError as err:
                raise DataError(f"{path}:{line_no}: non-numeric value ({err})") from None
            if not np.isfinite(vals).all():
                raise DataError(f"{path}:{line_no}: non-finite value")
            rows.append(vals)
    if not rows:
        raise DataError(f"{path}:1: empty exp-map file")
    return np.asarray(rows)


def expmap_to_positions(expmap: torch.Tensor, zero_root: bool = True) -> torch.Tensor:
    """Forward kinematics of the 32-joint H3.6M skeleton.

    Args:
        expmap: ``(T, 99)`` translation + 32 exp-map rotations.
        zero_root: zero the global translation and root rotation (prediction protocol).

    Returns:
        ``(T, 32, 3)`` joint positions in millimetres (all frames at once; the loop runs over the 32 joints of
        the kinematic tree, parents before children).
    """
    e = expmap.double().clone()
    if zero_root:
        e[:, :6] = 0
    rot = axis_angle_to_matrix(e[:, 3:].reshape(-1, 32, 3))  # (T, 32, 3, 3)
    offsets = torch.as_tensor(OFFSETS_MM, dtype=torch.float64)
    R: list[torch.Tensor] = [rot[:, 0]]
    x: list[torch.Tensor] = [e[:, :3]]
    for j in range(1, 32):
        p = PARENTS[j]
        x.append(offsets[j] @ R[p] + x[p])
        R.append(rot[:, j] @ R[p])
    return torch.stack(x, 1)


class Human36M(BaseDataModule):
    """Human3.6M joints: ``past (B, 22, 10, 3)`` -> ``future (B, 22, 25, 3)`` in millimetres, 25 fps.

    Args:
        root: folder holding ``S1 ... S11`` (``data.init_args.root``).
        actions: actions to load (default: all 15).
        past_len: observed frames.
        future_len: predicted frames.
        train_subjects: training subjects.
        val_subjects: validation subjects.
        test_subjects: test subjects.
        train_stride: frames between training windows.
        test_protocol: ``"all"`` or ``"sampled"``.
        test_stride: frames between windows for ``"all"`` (validation uses it too).
        test_samples_per_action: windows per action for ``"sampled"``.
        data_seed: seed of the ``"sampled"`` protocol.
        **kwargs: ``batch_size``, ``num_workers``, ``seed``, ``pin_memory``.
    """

    def __init__(
        self,
        root: str = "data/h36m",
        actions: list[str] | None = None,
        past_len: int = 10,
        future_len: int = 25,
        train_subjects: tuple[int, ...] = (1, 6, 7, 8, 9),
        val_subjects: tuple[int, ...] = (11,),
        test_subjects: tuple[int, ...] = (5,),
        train_stride: int = 5,
        test_protocol: Literal["all", "sampled"] = "sampled",
        test_stride: int = 10,
        test_samples_per_action: int = 256,
        data_seed: int = 1234567890,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        actions = list(actions or ACTIONS)
        bad = [a for a in actions if a not in ACTIONS]
        if bad:
            raise ValueError(f"data.init_args.actions: unknown {bad}; expected some of {ACTIONS}")
        if test_protocol not in ("all", "sampled"):
            raise ValueError(f"data.init_args.test_protocol: expected 'all' or 'sampled', got {test_protocol!r}")
        self.root, self.actions = root, actions
        self.past_len, self.future_len = past_len, future_len
        self.subjects = {"train": train_subjects, "val": val_subjects, "test": test_subjects}
        self.train_stride, self.test_protocol, self.test_stride = train_stride, test_protocol, test_stride
        self.test_samples_per_action, self.data_seed = test_samples_per_action, data_seed

    def sequence(self, subject: int, action: str, subaction: int) -> torch.Tensor:
        """Joint positions ``(T, 22, 3)`` at 25 fps of one file."""
        root = self.check_path(self.root, "data.init_args.root")
        path = self.check_path(root / f"S{subject}" / f"{action}_{subaction}.txt", "data.init_args.root")
        pos = expmap_to_positions(torch.from_numpy(read_expmap_file(path)[::2]))
        return pos[:, list(KEPT_JOINTS)].float()

    def _windows(self, seq: torch.Tensor, starts: np.ndarray) -> torch.Tensor:
        L = self.past_len + self.future_len
        idx = torch.as_tensor(starts)[:, None] + torch.arange(L)[None]
        return seq[idx].permute(0, 2, 1, 3)  # (N, 22, L, 3)

    def _split(self, split: str) -> TrajectoryDataset:
        L = self.past_len + self.future_len
        rng = np.random.default_rng(self.data_seed)
        out = []
        for subject in self.subjects[split]:
            for action in self.actions:
                seqs = [self.sequence(subject, action, sub) for sub in (1, 2)]
                for seq in seqs:
                    if seq.shape[0] < L:
                        raise DataError(f"S{subject}/{action}: {seq.shape[0]} frames at 25 fps, fewer than {L}")
                if split == "test" and self.test_protocol == "sampled":
                    half = self.test_samples_per_action // 2
                    for seq in seqs:
                        out.append(self._windows(seq, rng.integers(0, seq.shape[0] - L + 1, half)))
                else:
                    stride = self.train_stride if split == "train" else self.test_stride
                    out += [self._windows(seq, np.arange(0, seq.shape[0] - L + 1, stride)) for seq in seqs]
        w = torch.cat(out)
        return TrajectoryDataset(w[:, :, : self.past_len], w[:, :, self.past_len :])

    def setup(self, stage: str | None = None) -> None:
        self.train_dataset = self._split("train")
        self.val_dataset = self._split("val")
        self.test_dataset = self._split("test")
