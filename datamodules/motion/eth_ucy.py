"""ETH-UCY pedestrian trajectories: the two on-disk layouts and leave-one-scene-out splits.

File formats (one observation per line, whitespace separated):

* 4 columns ``frame id x y`` (the Social-GAN release: ``datasets/<scene>/{train,val,test}/*.txt``);
* 17 columns, the AgentFormer/KITTI-like layout ``frame id type truncated occluded alpha x1 y1 x2 y2 h w l
  x y z rotation_y``: the ground-plane position is the location's x and z, i.e. **0-based columns 13 and 15**
  (the type column is a word such as ``Pedestrian``; only numeric columns are parsed).

Positions are metres; frames are every 0.4 s (2.5 fps). A sample is a window of ``past_len + future_len``
consecutive frames (8 + 12 by default) with every pedestrian present in all of its frames; windows slide by
one frame. Scenes: eth, hotel, univ, zara1, zara2.

Directory layouts under ``root``:

* ``root/<test_scene>/{train,val,test}/*.txt``: the Social-GAN leave-one-out splits (used as given);
* otherwise ``root/<scene>/*.txt`` for every scene: the test scene is held out, the other scenes train, and the
  last ``val_fraction`` of the frames of every training file forms the validation set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from visionkit.datamodules.base import BaseDataModule
from visionkit.datamodules.motion.common import TrajectoryDataset, pad_agents
from visionkit.errors import DataError

SCENES = ("eth", "hotel", "univ", "zara1", "zara2")
AGENTFORMER_X, AGENTFORMER_Y = 13, 15  # 0-based columns of the ground-plane position in the 17-column layout


def read_trajectory_file(path: str | Path) -> np.ndarray:
    """Read an ETH-UCY file in either layout.

    Returns:
        ``(N, 4)`` float64 rows ``frame, id, x, y`` sorted by frame then id.

    Raises:
        DataError: ``path:line`` for a wrong column count, a non-numeric field or an inconsistent layout.
    """
    path = Path(path)
    rows, ncol = [], None
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) not in (4, 17):
                raise DataError(f"{path}:{line_no}: expected 4 columns (frame id x y) or 17 (AgentFormer "
                                f"layout), got {len(fields)}")
            if ncol is None:
                ncol = len(fields)
            elif len(fields) != ncol:
                raise DataError(f"{path}:{line_no}: {len(fields)} columns after {ncol}-column lines")
            cols = (0, 1, 2, 3) if ncol == 4 else (0, 1, AGENTFORMER_X, AGENTFORMER_Y)
            try:
                vals = [float(fields[c]) for c in cols]
            except ValueError as err:
                raise DataError(f"{path}:{line_no}: non-numeric value ({err})") from None
            if not all(np.isfinite(vals)):
                raise DataError(f"{path}:{line_no}: non-finite value")
            rows.append(vals)
    if not rows:
        raise DataError(f"{path}:1: empty trajectory file")
    data = np.asarray(rows)
    return data[np.lexsort((data[:, 1], data[:, 0]))]


def trajectory_windows(data: np.ndarray, past_len: int = 8, future_len: int = 12, frame_range: tuple[float, float]
                       | None = None, min_agents: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Cut ``(N, 4)`` rows ``frame, id, x, y`` into windows of consecutive frames.

    The frame step is the smallest positive difference between distinct frame numbers; missing frames break
    tracks. A pedestrian enters a window only if it is observed in all ``past_len + future_len`` frames.

    Returns:
        A list of ``(past (A, T_p, 2), future (A, T_f, 2))`` float tensors.
    """
    frames = np.unique(data[:, 0])
    if frame_range is not None:
        frames = frames[(frames >= frame_range[0]) & (frames < frame_range[1])]
    L = past_len + future_len
    if len(frames) < L:
        return []
    step = np.diff(frames).min() if len(frames) > 1 else 1.0
    grid = np.arange(frames[0], frames[-1] + step / 2, step)  # every frame slot, also missing ones
    ids, id_index = np.unique(data[:, 1], return_inverse=True)
    slot = np.rint((data[:, 0] - frames[0]) / step).astype(np.int64)
    keep = (slot >= 0) & (slot < len(grid))
    pos = np.full((len(grid), len(ids), 2), np.nan)
    pos[slot[keep], id_index[keep]] = data[keep, 2:4]
    present = ~np.isnan(pos[..., 0])  # (F, P)
    full = sliding_window_view(present, L, axis=0).all(-1)  # (F - L + 1, P)
    windows = []
    for s in np.nonzero(full.sum(1) >= min_agents)[0]:  # once per window at set-up
        w = torch.from_numpy(pos[s:s + L, full[s]].transpose(1, 0, 2).copy()).float()  # (A, L, 2)
        windows.append((w[:, :past_len], w[:, past_len:]))
    return windows


class ETHUCY(BaseDataModule):
    """ETH-UCY with leave-one-scene-out splits (see the module docstring for layouts and formats).

    Batches: ``past (B, A, 8, 2)``, ``future (B, A, 12, 2)``, ``mask (B, A)`` (A = most pedestrians in a window
    of the split, or ``max_agents``). Evaluate best-of-20 with ``MotionPredictionTask(num_modes=20)``.

    Args:
        root: folder holding the scenes (``data.init_args.root``).
        test_scene: held-out scene, one of eth, hotel, univ, zara1, zara2.
        past_len: observed frames.
        future_len: predicted frames.
        val_fraction: share of the frames at the end of each training file used for validation (scene layout).
        max_agents: cap of pedestrians per window (None: no cap).
        **kwargs: ``batch_size``, ``num_workers``, ``seed``, ``pin_memory``.
    """

    def __init__(self, root: str = "data/eth_ucy", test_scene: str = "eth", past_len: int = 8, future_len: int = 12,
                 val_fraction: float = 0.2, max_agents: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if test_scene not in SCENES:
            raise ValueError(f"data.init_args.test_scene: expected one of {SCENES}, got {test_scene!r}")
        self.root, self.test_scene = root, test_scene
        self.past_len, self.future_len = past_len, future_len
        self.val_fraction, self.max_agents = val_fraction, max_agents

    def _files(self, folder: Path) -> list[Path]:
        files = sorted(folder.glob("*.txt"))
        if not files:
            raise DataError(f"data.init_args.root: no .txt trajectory files in {folder}")
        return files

    def _dataset(self, windows: list) -> TrajectoryDataset:
        if not windows:
            raise DataError(f"data.init_args.root: no window of {self.past_len + self.future_len} frames found")
        return TrajectoryDataset(*pad_agents(windows, self.max_agents))

    def setup(self, stage: str | None = None) -> None:
        root = self.check_path(self.root, "data.init_args.root")
        split_dir = root / self.test_scene
        kw = dict(past_len=self.past_len, future_len=self.future_len)
        if (split_dir / "train").is_dir():
            parts = {}
            for split in ("train", "val", "test"):
                parts[split] = [w for f in self._files(split_dir / split) for w in
                                trajectory_windows(read_trajectory_file(f), **kw)]
        else:
            parts = {"train": [], "val": [], "test": []}
            for scene in SCENES:
                folder = self.check_path(root / scene, "data.init_args.root")
                for f in self._files(folder):
                    data = read_trajectory_file(f)
                    if scene == self.test_scene:
                        parts["test"] += trajectory_windows(data, **kw)
                        continue
                    lo, hi = data[:, 0].min(), data[:, 0].max()
                    cut = hi - self.val_fraction * (hi - lo)
                    parts["train"] += trajectory_windows(data, frame_range=(lo, cut), **kw)
                    parts["val"] += trajectory_windows(data, frame_range=(cut, hi + 1), **kw)
        self.train_dataset = self._dataset(parts["train"])
        self.val_dataset = self._dataset(parts["val"])
        self.test_dataset = self._dataset(parts["test"])
