"""``VoxelShapes``: seeded binary voxel volumes of 3D primitives for the 3D (t + i + j) NAR variant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from visionkit.datamodules.generation.digits import TensorImageDataset
from visionkit.datamodules.generation.tokens import GenerationDataModule
from visionkit.errors import DataError

__all__ = ["VOXEL_SHAPES", "VoxelShapes", "read_voxel_split", "render_voxels"]

VOXEL_SHAPES = ("cube", "sphere", "cylinder", "cone", "torus")


def render_voxels(labels: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """One random primitive per label -> occupancy ``(n, 1, size, size, size)`` in {0, 1} (axes z, y, x)."""
    n = labels.numel()
    r = (0.25 + 0.15 * torch.rand(n, generator=generator)) * size
    centre = r.unsqueeze(1) + torch.rand(n, 3, generator=generator) * (size - 2 * r).unsqueeze(1)  # (n, 3) z, y, x
    c = torch.arange(size, dtype=torch.float32) + 0.5
    dz = c.view(1, -1, 1, 1) - centre[:, 0].view(-1, 1, 1, 1)
    dy = c.view(1, 1, -1, 1) - centre[:, 1].view(-1, 1, 1, 1)
    dx = c.view(1, 1, 1, -1) - centre[:, 2].view(-1, 1, 1, 1)
    r = r.view(-1, 1, 1, 1)
    rho = (dx**2 + dy**2).sqrt()
    shapes = torch.stack([
        (dz.abs() <= r) & (dy.abs() <= r) & (dx.abs() <= r),
        dx**2 + dy**2 + dz**2 <= r**2,
        (rho <= r) & (dz.abs() <= r),
        (dz.abs() <= r) & (rho <= (dz + r) / 2),  # apex at low z, base of radius r at high z
        (rho - 0.65 * r) ** 2 + dz**2 <= (0.35 * r) ** 2,
    ], 1)  # (n, 5, D, H, W)
    out = shapes.gather(1, labels.view(-1, 1, 1, 1, 1).expand(-1, 1, size, size, size))
    return out.float()


def read_voxel_split(path: Path) -> TensorImageDataset:
    """Read one split ``<split>.npz``: ``voxels (N, D, H, W)`` occupancy (bool / {0, 1} ints / floats in [0, 1])
    and ``labels (N,)`` integer classes >= 0; errors name the file and the array."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("voxels", "labels") if k in z.files}
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read npz ({err})") from err
    if len(arrays) != 2:
        raise DataError(f"{path}: expected arrays 'voxels' (N, D, H, W) and 'labels' (N,), found {sorted(arrays)}")
    vox, labels = arrays["voxels"], arrays["labels"]
    if vox.ndim != 4:
        raise DataError(f"{path}: 'voxels' must be (N, D, H, W), got shape {vox.shape}")
    if labels.shape != (len(vox),) or not np.issubdtype(labels.dtype, np.integer) or (labels < 0).any():
        raise DataError(f"{path}: 'labels' must be ({len(vox)},) non-negative integers, got {labels.dtype} "
                        f"{labels.shape}")
    vox = vox.astype(np.float32)
    if vox.size and (vox.min() < 0 or vox.max() > 1):
        raise DataError(f"{path}: 'voxels' values must be in [0, 1], got [{vox.min()}, {vox.max()}]")
    return TensorImageDataset(torch.from_numpy(vox).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))


class VoxelShapes(GenerationDataModule):
    """Binary occupancy volumes ``image (1, S, S, S)`` of cube / sphere / cylinder / cone / torus (5 classes),
    or the user's volumes from ``root``.

    Tokenised with ``PixelQuantizer(levels=2)``; the NAR ordering over ``(S, S, S)`` decodes in ``3S - 2``
    passes (``S**3`` for raster).

    On disk (``root``): ``root/train.npz``, ``root/val.npz`` and optionally ``root/test.npz`` (else the
    validation split is also the test split), each with ``voxels (N, D, H, W)`` occupancy and ``labels (N,)``
    (see :func:`read_voxel_split`). ``num_classes`` is then the largest label + 1; the model's
    ``image_size`` must be ``[D, H, W]`` and its ``num_classes`` at least that.

    Args:
        size: volume side of the generated primitives.
        num_train, num_val, num_test: split sizes of the generated primitives.
        data_seed: seed of the volumes.
        root: folder of ``.npz`` splits; None generates the primitives.
    """

    num_classes = len(VOXEL_SHAPES)

    def __init__(self, size: int = 8, num_train: int = 2000, num_val: int = 200, num_test: int = 400,
                 data_seed: int = 0, root: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size, self.sizes, self.data_seed, self.root = size, (num_train, num_val, num_test), data_seed, root

    def cache_key(self) -> str:
        if self.root is not None:
            return f"voxels|{Path(self.root).resolve()}"
        return f"voxels|{self.size}|{self.sizes}|{self.data_seed}"

    def _read_root(self) -> list[TensorImageDataset]:
        root = self.check_path(self.root, "data.init_args.root")
        train = read_voxel_split(self.check_path(root / "train.npz", "data.init_args.root (train.npz)"))
        val = read_voxel_split(self.check_path(root / "val.npz", "data.init_args.root (val.npz)"))
        test = read_voxel_split(root / "test.npz") if (root / "test.npz").exists() else val
        shape = tuple(train.images.shape[2:])
        for name, ds in (("val", val), ("test", test)):
            if tuple(ds.images.shape[2:]) != shape:
                raise DataError(f"{root / (name + '.npz')}: volumes {tuple(ds.images.shape[2:])} differ from "
                                f"train.npz's {shape}")
        self.num_classes = int(max(int(ds.labels.max()) for ds in (train, val, test) if len(ds)) + 1)
        return [train, val, test]

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        if self.root is not None:
            self.train_dataset, self.val_dataset, self.test_dataset = self._read_root()
            self.attach_tokens()
            return
        splits = []
        for k, n in enumerate(self.sizes):
            g = torch.Generator().manual_seed(self.data_seed * 1000 + k)
            labels = (torch.arange(n) % self.num_classes)[torch.randperm(n, generator=g)]
            splits.append(TensorImageDataset(render_voxels(labels, self.size, g), labels))
        self.train_dataset, self.val_dataset, self.test_dataset = splits
        self.attach_tokens()
