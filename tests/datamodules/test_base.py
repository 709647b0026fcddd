"""BaseDataModule loaders: worker count capped at the CPUs of the process, pinned memory only towards CUDA."""

import os

import torch
from torch.utils.data import Dataset

from visionkit.datamodules.base import BaseDataModule


class _Range(Dataset):
    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> dict:
        return {"x": torch.tensor([float(i)])}


class _DM(BaseDataModule):
    def setup(self, stage=None):
        self.train_dataset = self.val_dataset = _Range()


def test_gpu_loader_settings_fall_back_on_a_cpu():
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    dm = _DM(batch_size=4, num_workers=cpus + 6, pin_memory=True)
    dm.setup()
    loader = dm.val_dataloader()
    assert loader.num_workers == cpus
    assert loader.pin_memory is torch.cuda.is_available()
    dm = _DM(batch_size=4, num_workers=0, pin_memory=True)
    dm.setup()
    loader = dm.val_dataloader()
    assert loader.num_workers == 0 and not loader.persistent_workers
    assert torch.cat([b["x"] for b in loader]).flatten().tolist() == [0, 1, 2, 3, 4, 5]
