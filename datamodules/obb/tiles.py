"""Full-size aerial images for ``predict``: one sample per image, with the sliding windows that cover it.

The windows follow the rule of ``tools/dota_split.py`` (:func:`window_starts`): for every rate ``r`` the image is
resized by ``r`` (bilinear, as the split tool does) and covered with ``size x size`` windows at a stride of
``size - gap``; along each axis the last window is moved back to end at the border, and a window larger than the
image is zero-padded at the bottom/right. The task cuts the tiles on its device, detects on batches of tiles,
maps the detections back to the full image and merges them with rotated NMS per class
(:func:`visionkit.tasks.obb.tiling.predict_large_image`), so ``predict`` writes one set of detections per full
image (e.g. DOTA Task1 files with :class:`~visionkit.tasks.obb.callbacks.DOTASubmissionWriter`).

Sample dict: ``image`` ``(3, H, W)`` uint8 (the image at its own size), ``views`` (per rate, the ``(3, h_r, w_r)``
uint8 resized image; the same tensor as ``image`` for rate 1), ``rates`` (floats), ``windows`` (per rate,
``(T_r, 2)`` long top-left corners ``(x, y)`` in that view), ``tile_size`` (the window side), ``image_id`` (file
stem) and ``orig_size`` ``(2,)`` ``(H, W)``.
Under DDP every image is predicted whole by one process (``predict`` splits the images, without repeats).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from visionkit.datamodules.base import BaseDataModule
from visionkit.datamodules.obb.dota import IMAGE_SUFFIXES
from visionkit.errors import DataError, DatasetNotFoundError

__all__ = ["window_starts", "tile_windows", "scaled_size", "LargeImageDataset", "LargeImages"]


def window_starts(length: int, size: int, gap: int) -> list[int]:
    """Start offsets of the windows along one axis of ``length`` pixels: ``0, stride, 2 stride, ...`` with
    ``stride = size - gap``, the last one moved back to end at the border (``max(0, length - size)``)."""
    if size <= gap:
        raise ValueError(f"size ({size}) must be larger than gap ({gap})")
    stride = size - gap
    starts, s = [], 0
    while True:
        if s + size >= length:
            starts.append(max(length - size, 0))
            break
        starts.append(s)
        s += stride
    return sorted(set(starts))


def tile_windows(height: int, width: int, size: int, gap: int) -> Tensor:
    """Top-left corners ``(T, 2)`` long ``(x, y)`` of the windows covering an image, row by row (y, then x), in
    the order the split tool writes its patches."""
    ys = torch.tensor(window_starts(height, size, gap), dtype=torch.long)
    xs = torch.tensor(window_starts(width, size, gap), dtype=torch.long)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)


def scaled_size(height: int, width: int, rate: float) -> tuple[int, int]:
    """``(h, w)`` of an image resized by ``rate`` (rounded, at least one pixel), as the split tool resizes."""
    return max(1, round(height * rate)), max(1, round(width * rate))


def _read_views(path: Path, rates: Sequence[float]) -> tuple[Tensor, list[Tensor]]:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # DOTA v2.0 has images of 20000 x 20000 pixels
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            W, H = im.size
            full = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)  # (3, H, W) uint8
            views = []
            for rate in rates:
                h, w = scaled_size(H, W, rate)
                if (h, w) == (H, W):
                    views.append(full)
                else:
                    arr = np.asarray(im.resize((w, h), Image.BILINEAR))
                    views.append(torch.from_numpy(arr.copy()).permute(2, 0, 1))
    except OSError as e:
        raise DataError(f"{path}: cannot read image ({e})") from e
    return full, views


class LargeImageDataset(Dataset):
    """Full-size images, one sample per image with its windows (see the module docstring).

    Args:
        paths: image files.
        size: window side, pixels.
        gap: overlap of neighbouring windows, pixels (< ``size``).
        rates: resize factors; each gives its own set of windows.
    """

    def __init__(self, paths: Sequence[str | Path], size: int = 1024, gap: int = 200,
                 rates: Sequence[float] = (1.0,)) -> None:
        if size <= gap or gap < 0:
            raise ValueError(f"data.init_args.size/gap: need 0 <= gap < size, got size {size}, gap {gap}")
        if not rates or any(float(r) <= 0 for r in rates):
            raise ValueError(f"data.init_args.rates: expected positive resize factors, got {list(rates)}")
        self.paths = [Path(p) for p in paths]
        self.size, self.gap, self.rates = int(size), int(gap), [float(r) for r in rates]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path = self.paths[i]
        full, views = _read_views(path, self.rates)
        windows = [tile_windows(int(v.shape[-2]), int(v.shape[-1]), self.size, self.gap) for v in views]
        return {"image": full, "views": views, "rates": list(self.rates), "windows": windows,
                "tile_size": self.size, "image_id": path.stem,
                "orig_size": torch.tensor([int(full.shape[-2]), int(full.shape[-1])])}


def _collate_images(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Lists over the images (full-size images differ in size); ``orig_size`` stacked ``(B, 2)``."""
    out = {k: [s[k] for s in samples] for k in samples[0]}
    out["orig_size"] = torch.stack(out["orig_size"])
    return out


class LargeImages(BaseDataModule):
    """Predict on full-size images (e.g. DOTA's 4000 x 4000 and larger) with sliding windows, in one command.

    ``predict`` only: each sample is one image with the windows of the split tool's rule; a
    :class:`~visionkit.tasks.obb.detection.RotatedDetectionTask` detects on batches of ``tile_batch`` tiles (a
    task option) and merges per image. Use with the model of a patch-trained config, e.g.::

        python -m visionkit predict --config configs/obb/dota_v1.yaml --ckpt_path <ckpt> \\
            --data LargeImages --data.init_args.root data/DOTA/test/images \\
            --trainer.callbacks+=DOTASubmissionWriter --trainer.callbacks.output_dir runs/dota_test_full

    Args:
        root: a folder of images (``.png``, ``.jpg``, ``.tif``, ...; sorted by name) or one image file.
        size: window side, pixels (the patch size the model was trained on).
        gap: overlap of neighbouring windows, pixels.
        rates: resize factors (multi-scale: e.g. ``[0.5, 1.0, 1.5]``); detections of all rates are merged.
        **kwargs: :class:`~visionkit.datamodules.base.BaseDataModule` arguments; ``batch_size`` counts images
            (default 1).
    """

    def __init__(self, root: str = "data/DOTA/test/images", size: int = 1024, gap: int = 200,
                 rates: list[float] = (1.0,), batch_size: int = 1, **kwargs: Any) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        if size <= gap or gap < 0:
            raise ValueError(f"data.init_args.size/gap: need 0 <= gap < size, got size {size}, gap {gap}")
        if not rates or any(float(r) <= 0 for r in rates):
            raise ValueError(f"data.init_args.rates: expected positive resize factors, got {list(rates)}")
        self.root, self.size, self.gap, self.rates = root, int(size), int(gap), [float(r) for r in rates]
        # unlabelled images: the classes are the model's (nothing to link into the task's config)
        self.class_names: list[str] | None = None
        self.num_classes: int | None = None

    def image_paths(self) -> list[Path]:
        root = self.check_path(self.root, "data.init_args.root")
        if root.is_file():
            return [root]
        paths = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise DatasetNotFoundError(f"data.init_args.root: no images ({', '.join(IMAGE_SUFFIXES)}) in {root}")
        return paths

    def setup(self, stage: str | None = None) -> None:
        if stage not in (None, "predict"):
            raise DataError(f"data: LargeImages serves predict only (got {stage!r}); train on patches, e.g. DOTA")
        if self.predict_dataset is None:
            self.predict_dataset = LargeImageDataset(self.image_paths(), self.size, self.gap, self.rates)

    def collate(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return _collate_images(samples)
