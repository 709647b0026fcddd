"""``ImageFolder``: ImageNet-style class sub-folders (``root/<split>/<class>/<image>``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from visionkit.datamodules.generation.tokens import GenerationDataModule
from visionkit.errors import DatasetNotFoundError
from visionkit.io import read_image

__all__ = ["ImageFolder", "ImageFolderDataset", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".JPEG")


def _center_crop_resize(img: torch.Tensor, size: int) -> torch.Tensor:
    """The largest centred square of ``img`` ``(C, H, W)`` uint8, resized to ``size`` (bicubic, antialiased)."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    _, h, w = img.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    img = img[:, top:top + s, left:left + s]
    if s != size:
        img = TF.resize(img, [size, size], interpolation=InterpolationMode.BICUBIC, antialias=True)
    return img


class ImageFolderDataset(Dataset):
    """Images of ``root/<class>/*`` (classes in ``classes`` order), centre-cropped and resized to ``size``.

    Samples: ``{"image": (C, size, size) uint8, "label": long}`` (float in [0, 1] once on the device, see
    :func:`~visionkit.datamodules.base.images_to_float`). A file that cannot be decoded raises a
    :class:`~visionkit.errors.DataError` naming it.
    """

    def __init__(self, root: Path, classes: list[str], size: int, channels: int = 3) -> None:
        self.root, self.classes, self.size, self.channels = root, classes, size, channels
        self.samples: list[tuple[Path, int]] = []
        for k, c in enumerate(classes):
            d = root / c
            if not d.is_dir():
                raise DatasetNotFoundError(f"{d}: class folder missing (classes come from the train split)")
            self.samples += [(p, k) for p in sorted(d.iterdir()) if p.suffix in IMAGE_EXTENSIONS or
                             p.suffix.lower() in IMAGE_EXTENSIONS]
        if not self.samples:
            raise DatasetNotFoundError(f"{root}: no images with extensions {IMAGE_EXTENSIONS} in class folders")

    def __len__(self) -> int:
        return len(self.samples)

    def fingerprint(self) -> str:
        """SHA-1 of the (relative path, label) list: adding, removing or relabelling files changes it."""
        import hashlib

        text = "\n".join(f"{p.relative_to(self.root)}|{k}" for p, k in self.samples)
        return hashlib.sha1(text.encode()).hexdigest()

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, label = self.samples[i]
        image = _center_crop_resize(read_image(path, self.channels), self.size)  # DataError names a bad file
        return {"image": image.contiguous(), "label": torch.tensor(label)}


class ImageFolder(GenerationDataModule):
    """Class-conditional images in ImageNet layout: ``root/train/<class>/*.JPEG``, ``root/val/<class>/*``.

    Classes are the sorted sub-folders of ``root/train``; ``val`` (and ``test``, if present; otherwise the
    validation split is also the test split) must use the same class folder names.

    Args:
        root: dataset root.
        image_size: output side in pixels (centre crop + bicubic resize).
        channels: 3 (RGB) or 1 (grey).
        **kwargs: ``tokenizer_ckpt``, ``cache_dir``, ``cache_batch_size``, ``cache_shard_size`` and the
            ``BaseDataModule`` arguments. With ``tokenizer_ckpt``, the splits are tokenized once in
            ``prepare_data`` (one process, on the accelerator, ``num_workers`` decoding, resumable shards) and
            every process reads the cache.
    """

    def __init__(self, root: str = "data/imagenet", image_size: int = 256, channels: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root, self.image_size, self.channels = root, image_size, channels

    def cache_key(self) -> str:
        return f"folder|{Path(self.root).resolve()}|{self.image_size}|{self.channels}"

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        root = self.check_path(self.root, "data.init_args.root")
        train = self.check_path(root / "train", "data.init_args.root (train split)")
        val = self.check_path(root / "val", "data.init_args.root (val split)")
        self.classes = sorted(p.name for p in train.iterdir() if p.is_dir())
        if not self.classes:
            raise DatasetNotFoundError(f"data.init_args.root: {train} has no class sub-folders")
        self.num_classes = len(self.classes)
        make = lambda d: ImageFolderDataset(d, self.classes, self.image_size, self.channels)  # noqa: E731
        self.train_dataset, self.val_dataset = make(train), make(val)
        self.test_dataset = make(root / "test") if (root / "test").is_dir() else self.val_dataset
        self.attach_tokens()
