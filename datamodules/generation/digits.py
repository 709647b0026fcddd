"""``Digits``: scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes, values 0..16)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from visionkit.datamodules.generation.tokens import GenerationDataModule

__all__ = ["Digits", "TensorImageDataset", "stratified_split"]


class TensorImageDataset(Dataset):
    """Samples ``{"image": (C, *S) float in [0, 1], "label": long}`` (+ ``"tokens"`` when given)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, tokens: torch.Tensor | None = None) -> None:
        self.images, self.labels, self.tokens = images, labels, tokens

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        out = {"image": self.images[i], "label": self.labels[i]}
        if self.tokens is not None:
            out["tokens"] = self.tokens[i]
        return out


def stratified_split(labels: np.ndarray, sizes: tuple[int, int], seed: int) -> tuple[np.ndarray, ...]:
    """Split indices into train / val / test with ``sizes = (num_val, num_test)``, class proportions kept.

    Returns three sorted index arrays.
    """
    rng = np.random.default_rng(seed)
    n = len(labels)
    val, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        nv = int(round(sizes[0] * len(idx) / n))
        nt = int(round(sizes[1] * len(idx) / n))
        val.append(idx[:nv])
        test.append(idx[nv:nv + nt])
    val_i, test_i = np.sort(np.concatenate(val)), np.sort(np.concatenate(test))
    train_i = np.setdiff1d(np.arange(n), np.concatenate([val_i, test_i]))
    return train_i, val_i, test_i


class Digits(GenerationDataModule):
    """The 8x8 digits bundled with scikit-learn (no download): images ``(1, 8, 8)`` = value / 16, labels 0..9.

    A stratified, seeded split into train / val / test. ``PixelQuantizer(levels=17)`` encodes them exactly.

    Args:
        val_size: validation images.
        test_size: test images.
        data_seed: seed of the split.
        **kwargs: ``tokenizer_ckpt``, ``cache_dir`` (token caching) and the ``BaseDataModule`` arguments.
    """

    num_classes = 10
    image_size = (8, 8)

    def __init__(self, val_size: int = 180, test_size: int = 360, data_seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.val_size, self.test_size, self.data_seed = val_size, test_size, data_seed

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        from sklearn.datasets import load_digits

        data = load_digits()
        images = torch.from_numpy(data.images.astype(np.float32) / 16.0).unsqueeze(1)  # (1797, 1, 8, 8)
        labels = torch.from_numpy(data.target.astype(np.int64))
        tr, va, te = stratified_split(data.target, (self.val_size, self.test_size), self.data_seed)
        self.train_dataset = TensorImageDataset(images[tr], labels[tr])
        self.val_dataset = TensorImageDataset(images[va], labels[va])
        self.test_dataset = TensorImageDataset(images[te], labels[te])
        self.attach_tokens()

    def cache_key(self) -> str:
        return f"digits|{self.val_size}|{self.test_size}|{self.data_seed}"
