"""Shared pieces of the point-cloud datamodules: an in-memory dataset, normalisation, augmentation."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from visionkit.datamodules.base import BaseDataModule


def normalize_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Centre ``(..., N, 3)`` clouds at their centroid and scale them into the unit ball."""
    c = points - points.mean(-2, keepdims=True)
    r = np.sqrt((c**2).sum(-1)).max(-1)[..., None, None]
    return c / np.maximum(r, 1e-12)


class PointCloudDataset(Dataset):
    """Clouds held in memory as arrays; returns the batch dicts of the family.

    Args:
        points: ``(S, N, 3)`` float.
        label: ``(S,)`` class ids (classification) or None.
        seg: ``(S, N)`` part ids or None.
        category: ``(S,)`` object categories or None.
        normals: ``(S, N, 3)`` or None.
        names: optional identifier per sample (file name), kept for prediction writers.

    Sample keys: ``points (N, 3)`` float32, ``index`` (int), and those of ``label``, ``seg``, ``category``,
    ``normals`` that are given.
    """

    def __init__(self, points: np.ndarray, label: np.ndarray | None = None, seg: np.ndarray | None = None,
                 category: np.ndarray | None = None, normals: np.ndarray | None = None,
                 names: list[str] | None = None) -> None:
        self.points = torch.as_tensor(np.ascontiguousarray(points), dtype=torch.float32)
        self.label = None if label is None else torch.as_tensor(np.asarray(label), dtype=torch.long)
        self.seg = None if seg is None else torch.as_tensor(np.asarray(seg), dtype=torch.long)
        self.category = None if category is None else torch.as_tensor(np.asarray(category), dtype=torch.long)
        self.normals = None if normals is None else torch.as_tensor(np.ascontiguousarray(normals), dtype=torch.float32)
        self.names = names

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, i: int) -> dict[str, Any]:
        out: dict[str, Any] = {"points": self.points[i], "index": i}
        for key in ("label", "seg", "category", "normals"):
            v = getattr(self, key)
            if v is not None:
                out[key] = v[i]
        return out


class PointCloudDataModule(BaseDataModule):
    """Base of the point-cloud datamodules: the up axis and scale/jitter augmentation of training clouds.

    Rotations are not applied here: the task owns the rotation protocol (train/test ``none|z|so3``) and reads
    :attr:`up_axis` from the datamodule.

    Args:
        up_axis: the dataset's vertical axis (``z`` rotations turn about it).
        scale_range: uniform random scale of training clouds (isotropic, so it commutes with rotations).
        jitter: standard deviation of Gaussian noise added to training points (clipped at 5 σ).
        test_rotation: when set (``none``, ``z`` or ``so3``), overrides the task's evaluation rotation; it is a
            data setting so that a trained checkpoint can be evaluated under another protocol
            (``test --ckpt_path ... --data.test_rotation so3``).
        **kwargs: :class:`~visionkit.datamodules.base.BaseDataModule` arguments.
    """

    up_axis: str = "z"

    def __init__(self, up_axis: Literal["x", "y", "z"] = "z", scale_range: tuple[float, float] = (0.8, 1.25),
                 jitter: float = 0.01, test_rotation: Literal["none", "z", "so3"] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if test_rotation not in (None, "none", "z", "so3"):
            raise ValueError(f"data.init_args.test_rotation: expected none, z or so3, got {test_rotation!r}")
        self.test_rotation = test_rotation
        if up_axis not in ("x", "y", "z"):
            raise ValueError(f"data.init_args.up_axis: expected x, y or z, got {up_axis!r}")
        self.up_axis = up_axis
        self.scale_range = tuple(scale_range)
        self.jitter = jitter

    def load(self, split: str) -> PointCloudDataset:
        """Read one split (``train``, ``test``, and ``val`` where the dataset has one)."""
        raise NotImplementedError(f"{type(self).__name__} must implement load(split)")

    def setup(self, stage: str | None = None) -> None:
        """Train and test splits from :meth:`load`; validation runs on the test split, as in these benchmarks."""
        if stage in ("fit", None) and self.train_dataset is None:
            self.train_dataset = self.load("train")
        if self.test_dataset is None:
            self.test_dataset = self.load("test")
        self.val_dataset = self.test_dataset

    def augment(self, batch: dict[str, Any]) -> dict[str, Any]:
        x = batch["points"]
        lo, hi = self.scale_range
        s = torch.empty(x.shape[0], 1, 1, device=x.device, dtype=x.dtype).uniform_(lo, hi)
        x = x * s
        if self.jitter > 0:
            x = x + (torch.randn_like(x) * self.jitter).clamp(-5 * self.jitter, 5 * self.jitter)
        return {**batch, "points": x}
