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


def test_uint8_images_become_float_on_the_device_in_every_stage():
    from visionkit.datamodules.base import collate_dict, images_to_float
    from visionkit.datamodules.obb.synthetic import SyntheticOBB

    dm = SyntheticOBB(num_train=4, num_val=2, num_test=2, batch_size=2)
    dm.setup("fit")
    samples = [dm.train_dataset[i] for i in range(2)]
    assert all(s["image"].dtype == torch.uint8 for s in samples)  # a quarter of the bytes through the loader
    batch = collate_dict(samples)
    out = dm.on_after_batch_transfer(batch, 0)  # no trainer: validation/test/predict path, no augmentation
    assert out["image"].dtype == torch.float32
    torch.testing.assert_close(out["image"], torch.stack([s["image"] for s in samples]).double().div(255).float())
    assert batch["image"].dtype == torch.uint8  # the loader's batch is not changed in place
    # lists of differently sized images (no resizing) and float images that pass unchanged
    mixed = {"image": [torch.full((3, 2, 3), 255, dtype=torch.uint8), torch.zeros(3, 4, 4, dtype=torch.uint8)],
             "other": torch.full((2,), 7, dtype=torch.uint8)}
    conv = images_to_float(mixed, ("image",))
    assert [im.dtype for im in conv["image"]] == [torch.float32, torch.float32]
    assert conv["image"][0].min() == 1.0 and conv["image"][1].max() == 0.0
    assert conv["other"].dtype == torch.uint8  # keys not named stay as they are
    f = torch.rand(1, 3, 2, 2)
    assert images_to_float({"image": f}, ("image",))["image"] is f
