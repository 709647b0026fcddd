"""Image loading: uint8 samples (converted on the device) against float32 samples, through the real loader.

Writes DOTA-format patches (``tools/fake_data.py``, 1024 x 1024 PNGs by default), then iterates the ``DOTA``
datamodule's training loader with worker processes twice per repeat, alternating: as it is (uint8 images, turned
into float32 by ``on_after_batch_transfer``) and with the samples converted to float32 in the workers (the
previous behaviour: four times the bytes through the worker queues and pinned memory). Reports images per second
and the ratio uint8 / float measured in the same run, and the bytes of one batch's images.

    python tools/bench_loader.py                     # 16 patches of 1024 px, batch 2, 2 workers, 3 repeats
    python tools/bench_loader.py --size 512 --images 32 --workers 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fake_data as fake  # noqa: E402

from visionkit.datamodules.obb import DOTA  # noqa: E402
from visionkit.io import image_to_float  # noqa: E402


class _FloatInWorkers(torch.utils.data.Dataset):
    """A dataset whose samples carry float32 images (the conversion done in the loader worker)."""

    def __init__(self, base: torch.utils.data.Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        s = dict(self.base[i])
        s["image"] = image_to_float(s["image"])
        return s


def _rate(dm: DOTA, float_in_workers: bool) -> tuple[float, int]:
    base = dm.train_dataset
    if float_in_workers:
        dm.train_dataset = _FloatInWorkers(base)
    try:
        n, nbytes = 0, 0
        t = time.perf_counter()
        for batch in dm.train_dataloader():
            batch = dm.on_after_batch_transfer(batch, 0)  # uint8 -> float32 here (the device side)
            n += batch["image"].shape[0]
            nbytes = batch["image"].numel() * (1 if not float_in_workers else 4)
        return n / (time.perf_counter() - t), nbytes
    finally:
        dm.train_dataset = base


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = fake.write_dota(Path(tmp) / "dota", n_images=a.images, size=a.size, objects=(20, 40),
                               splits=("train", "val"))
        dm = DOTA(root=str(root), batch_size=a.batch_size, num_workers=a.workers, image_size=None)
        dm.setup("fit")
        print(f"{a.images} DOTA patches of {a.size} px (PNG), batch {a.batch_size}, {a.workers} workers, "
              f"{a.threads} thread(s)")
        ratios = []
        for r in range(a.repeats):
            u8, u8_bytes = _rate(dm, float_in_workers=False)
            f32, f32_bytes = _rate(dm, float_in_workers=True)
            ratios.append(u8 / f32)
            print(f"repeat {r}: uint8 {u8:.2f} img/s ({u8_bytes / 2**20:.1f} MB of images per batch from the "
                  f"workers), float32 {f32:.2f} img/s ({f32_bytes / 2**20:.1f} MB): ratio {u8 / f32:.2f}x")
        ratios.sort()
        print(f"median ratio uint8 / float32: {ratios[len(ratios) // 2]:.2f}x")


if __name__ == "__main__":
    main()
