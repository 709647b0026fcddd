"""ImageFolder on tiny PNG class folders written by the test; corrupt files are named in the error."""

import numpy as np
import pytest
import torch
from PIL import Image

from visionkit.datamodules.generation import ImageFolder
from visionkit.errors import DataError, DatasetNotFoundError


def _write(root, split, cls, name, arr):
    d = root / split / cls
    d.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(d / name)


def test_reads_class_folders(tmp_path):
    rng = np.random.default_rng(0)
    imgs = {}
    for split in ("train", "val"):
        for cls in ("n01", "n02", "n03"):
            for k in range(2):
                arr = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                _write(tmp_path, split, cls, f"{k}.png", arr)
                imgs[(split, cls, k)] = arr
    (tmp_path / "train" / "n01" / "notes.txt").write_text("ignored")
    dm = ImageFolder(root=str(tmp_path), image_size=8, batch_size=4)
    dm.setup("fit")
    assert dm.classes == ["n01", "n02", "n03"] and dm.num_classes == 3
    assert len(dm.train_dataset) == 6 and len(dm.val_dataset) == 6 and dm.test_dataset is dm.val_dataset
    s = dm.train_dataset[3]  # sorted: n02/1.png
    assert s["label"].item() == 1
    assert torch.equal(s["image"], torch.from_numpy(imgs[("train", "n02", 1)]).permute(2, 0, 1))  # uint8
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 8, 8) and batch["image"].dtype == torch.uint8
    on_device = dm.on_after_batch_transfer(batch, 0)["image"]
    assert on_device.dtype == torch.float32 and torch.equal(on_device, batch["image"].float() / 255)


def test_resize_center_crop(tmp_path):
    arr = np.zeros((10, 20, 3), dtype=np.uint8)
    arr[:, 5:15] = 255  # the centre square is white, the sides black
    _write(tmp_path, "train", "a", "x.png", arr)
    _write(tmp_path, "val", "a", "x.png", arr)
    dm = ImageFolder(root=str(tmp_path), image_size=5)
    dm.setup("fit")
    img = dm.train_dataset[0]["image"]
    assert img.shape == (3, 5, 5) and img.min() > 230


def test_errors_name_the_file(tmp_path):
    _write(tmp_path, "train", "a", "ok.png", np.zeros((4, 4, 3), dtype=np.uint8))
    (tmp_path / "train" / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    _write(tmp_path, "val", "a", "ok.png", np.zeros((4, 4, 3), dtype=np.uint8))
    dm = ImageFolder(root=str(tmp_path), image_size=4)
    dm.setup("fit")
    with pytest.raises(DataError, match="broken.png"):
        [dm.train_dataset[i] for i in range(len(dm.train_dataset))]
    with pytest.raises(DatasetNotFoundError, match="data.init_args.root"):
        ImageFolder(root=str(tmp_path / "nope")).setup("fit")
    (tmp_path / "val" / "a" / "ok.png").unlink()
    (tmp_path / "val" / "a").rmdir()
    with pytest.raises(DatasetNotFoundError, match="class folder missing"):
        ImageFolder(root=str(tmp_path)).setup("fit")
