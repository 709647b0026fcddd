"""Generation outputs: sample grids logged to TensorBoard and written as PNG, and a PNG prediction writer."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback
from torch import Tensor

from visionkit.callbacks.pictures import png_bytes, save_picture, to_uint8
from visionkit.callbacks.writer import PredictionWriter
from visionkit.io import atomic_write_bytes

__all__ = ["PNGSampleWriter", "SampleGridLogger", "make_grid", "png_bytes"]


def make_grid(images: Tensor, nrow: int, pad: int = 1) -> Tensor:
    """Tile ``images (B, C, H, W)`` in [0, 1] into ``(C, rows * (H + pad) + pad, nrow * (W + pad) + pad)``.

    Volumes ``(B, C, D, H, W)`` are shown as their maximum projection along ``D``.
    """
    if images.dim() == 5:
        images = images.amax(dim=2)
    B, C, H, W = images.shape
    rows = (B + nrow - 1) // nrow
    grid = images.new_ones(C, rows * (H + pad) + pad, nrow * (W + pad) + pad) * 0.5
    for k in range(B):  # tiling a picture (tens of images), not a hot path
        r, c = divmod(k, nrow)
        y, x = pad + r * (H + pad), pad + c * (W + pad)
        grid[:, y:y + H, x:x + W] = images[k]
    return grid


class SampleGridLogger(Callback):
    """Every ``every_n_epochs`` validation epochs: a class-conditional sample grid (one row per class).

    The grid is logged to TensorBoard (``samples``) and written as ``<log_dir>/samples/epoch_XXXX.png``, on rank 0
    only and without any collective call (safe under DDP). Sampling uses a fixed seed, so grids of successive
    epochs are comparable.

    Args:
        samples_per_class: columns of the grid.
        every_n_epochs: period in epochs (counted at validation epoch ends).
        scale: PNG upscaling factor (nearest) for small images.
        seed: sampling seed.
        output_dir: folder of the PNG files (None: ``<log_dir>/samples``).
    """

    def __init__(self, samples_per_class: int = 8, every_n_epochs: int = 1, scale: int = 4, seed: int = 0,
                 output_dir: str | None = None) -> None:
        self.samples_per_class, self.every_n_epochs = samples_per_class, every_n_epochs
        self.scale, self.seed, self.output_dir = scale, seed, output_dir

    def sample_grid(self, pl_module: Any) -> Tensor:
        """``(C, H', W')`` grid of samples from ``pl_module.generate``."""
        k = pl_module.hparams.num_classes
        labels = torch.arange(k, device=pl_module.device).repeat_interleave(self.samples_per_class)
        gen = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        images = pl_module.generate(labels, generator=gen)["image"]
        return make_grid(images.float().cpu(), nrow=self.samples_per_class)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs or not trainer.is_global_zero:
            return
        grid = to_uint8(self.sample_grid(pl_module), self.scale, rgb=False)
        save_picture(trainer, grid, "samples", f"epoch_{trainer.current_epoch:04d}.png", self.output_dir, "samples")


class PNGSampleWriter(PredictionWriter):
    """Writes every generated image of ``predict`` as ``<output_dir>/<rank>_<batch>_<i>_class<label>.png``.

    Expects predictions ``{"image": (B, C, H, W) in [0, 1], "label": (B,)}`` (volumes are max-projected).

    Args:
        output_dir: folder of the PNG files.
        scale: upscaling factor (nearest).
    """

    def __init__(self, output_dir: str = "predictions", scale: int = 1) -> None:
        super().__init__(output_dir)
        self.scale = scale

    def write_batch(self, prediction: dict[str, Any], batch: dict[str, Any], batch_idx: int, rank: int) -> None:
        images = prediction["image"]
        if images.dim() == 5:
            images = images.amax(dim=2)
        labels = prediction.get("label", batch.get("label"))
        for i in range(images.shape[0]):
            name = f"{rank}_{batch_idx:05d}_{i:03d}_class{int(labels[i])}.png"
            atomic_write_bytes(self.output_dir / name, png_bytes(images[i], self.scale))
