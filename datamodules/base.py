"""``BaseDataModule``: dict batches, seeded shuffling, device-side augmentation."""

from __future__ import annotations

import os
from collections.abc import Sequence, Sized
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from visionkit.errors import ConfigError, DataError, DatasetNotFoundError
from visionkit.io import image_to_float
from visionkit.seed import step_seed


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class EpochSeededSampler(DistributedSampler):
    """Shuffled order drawn from ``seed + epoch``, split across processes: the same order after a resume.

    Process ``r`` of ``n`` takes every ``n``-th index of one permutation, so ``n`` processes with batch ``b``
    see exactly the samples of one process with batch ``n * b`` at every step. Lightning calls
    :meth:`set_epoch` each epoch and leaves a ``DistributedSampler`` in place under DDP.
    """

    def __init__(self, dataset: Dataset, seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)


def collate_dict(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Collate a list of sample dicts: tensors of equal shape are stacked, everything else becomes a list.

    Variable-size fields (boxes per image, points per cloud) therefore arrive as lists of tensors.
    """
    out: dict[str, Any] = {}
    for key in samples[0]:
        vals = [s[key] for s in samples]
        if all(torch.is_tensor(v) for v in vals) and all(v.shape == vals[0].shape for v in vals):
            out[key] = torch.stack(vals)
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            out[key] = torch.tensor(vals)
        else:
            out[key] = vals
    return out


def images_to_float(batch: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """Turn the uint8 images under ``keys`` (a stacked tensor or a list of tensors) into float32 in [0, 1].

    Datasets hand images over as uint8, so the loader workers, pinned memory and the host-to-device copy move
    a quarter of the bytes; the conversion runs once the batch is on the device. Float images pass unchanged;
    the input dict is not modified.
    """
    out = dict(batch)
    for k in keys:
        if k in batch:
            out[k] = image_to_float(batch[k])
    return out


class BaseDataModule(LightningDataModule):
    """Base class of all datamodules.

    Subclasses set ``self.train_dataset``, ``self.val_dataset``, ``self.test_dataset`` and optionally
    ``self.predict_dataset`` (``torch.utils.data.Dataset`` s returning dicts) in :meth:`setup`, and may
    override :meth:`augment`, which runs on the device after transfer, on training batches only. Images
    named in ``uint8_image_keys`` may be uint8 in the samples: they become float32 in [0, 1] on the device,
    before :meth:`augment`, in every stage (:func:`images_to_float`).

    Args:
        batch_size: samples per batch (per process under DDP).
        num_workers: DataLoader worker processes.
        seed: seed of the shuffling order (combined with the epoch).
        pin_memory: pin host memory (useful on GPU).
    """

    #: batch keys whose uint8 images are converted to float on the device (see :func:`images_to_float`)
    uint8_image_keys: tuple[str, ...] = ()

    def __init__(self, batch_size: int = 8, num_workers: int = 0, seed: int = 0, pin_memory: bool = False) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"data.init_args.batch_size: expected a positive integer, got {batch_size!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ConfigError(f"data.init_args.num_workers: expected an integer >= 0, got {num_workers!r}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.pin_memory = pin_memory
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None
        self.predict_dataset: Dataset | None = None

    # ----------------------------------------------------------------- helpers
    @staticmethod
    def check_path(path: str | os.PathLike | None, key: str) -> Path:
        """Return ``path`` as a Path, or raise an error naming the config ``key`` if it does not exist."""
        if path is None:
            raise DatasetNotFoundError(f"{key}: no path given")
        p = Path(path).expanduser()
        if not p.exists():
            raise DatasetNotFoundError(f"{key}: {p} does not exist")
        return p

    def collate(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return collate_dict(samples)

    def loader_settings(self) -> tuple[int, bool]:
        """``(num_workers, pin_memory)`` the loaders use on this machine.

        ``num_workers`` is capped at the CPUs this process may run on (more workers than CPUs load no faster, and
        every worker holds a copy of the dataset's Python objects), and host memory is pinned only when the
        batches go to a CUDA device (pinning helps the host-to-GPU copy; on a CPU run it only costs time).
        A GPU config therefore runs unchanged on a CPU.
        """
        workers = max(0, min(self.num_workers, available_cpus()))
        trainer = self.trainer
        on_cuda = trainer.strategy.root_device.type == "cuda" if trainer is not None else torch.cuda.is_available()
        return workers, bool(self.pin_memory and on_cuda)

    def _loader(self, dataset: Dataset | None, split: str, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__} has no {split} dataset (setup() did not create one)")
        if split != "val" and isinstance(dataset, Sized) and len(dataset) == 0:
            # a reader that filtered out every record: say so instead of training or testing on nothing
            raise DataError(f"data ({type(self).__name__}): the {split} split is empty (no records read)")
        workers, pin = self.loader_settings()
        sampler = None
        if shuffle:
            trainer = self.trainer
            world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
            sampler = EpochSeededSampler(dataset, self.seed, num_replicas=world, rank=rank)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=workers,
            collate_fn=self.collate,
            pin_memory=pin,
            persistent_workers=workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, "train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, "val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, "test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        ds = self.predict_dataset if self.predict_dataset is not None else self.test_dataset
        return self._loader(ds, "predict", shuffle=False)

    # ----------------------------------------------------------------- device-side augmentation
    def augment(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Augment a training batch on the device (kornia, rotations...). Default: identity."""
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.uint8_image_keys and isinstance(batch, dict):
            batch = images_to_float(batch, self.uint8_image_keys)
        trainer = self.trainer
        if trainer is not None and trainer.training:
            # the same random augmentation for the same step, also after a resume
            torch.manual_seed(step_seed(trainer.global_step, trainer.global_rank, salt=2))
            batch = self.augment(batch)
        return batch
