"""Digits: the bundled scikit-learn set, split disjoint and stratified, values exact on 17 levels."""

import numpy as np
import torch
from sklearn.datasets import load_digits

from visionkit.datamodules.generation import Digits


def test_digits_splits_and_values():
    dm = Digits(batch_size=16, val_size=180, test_size=360)
    dm.setup("fit")
    sizes = [len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)]
    assert sum(sizes) == 1797 and abs(sizes[1] - 180) <= 10 and abs(sizes[2] - 360) <= 10
    ref = load_digits()
    all_imgs = torch.cat([d.images for d in (dm.train_dataset, dm.val_dataset, dm.test_dataset)])
    # the three splits are a partition of the dataset (compare sorted flattened images as multisets)
    a = np.sort(all_imgs.flatten(1).numpy() * 16, axis=0)
    b = np.sort(ref.images.reshape(1797, -1).astype(np.float32), axis=0)
    assert np.array_equal(a, b)
    for d in (dm.val_dataset, dm.test_dataset):
        counts = torch.bincount(d.labels, minlength=10).float()
        assert counts.min() >= 0.7 * counts.mean()  # stratified
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (16, 1, 8, 8) and batch["label"].dtype == torch.long
    assert torch.equal(batch["image"] * 16, (batch["image"] * 16).round())
    assert 0 <= batch["image"].min() and batch["image"].max() <= 1
