"""Pictures for the family callbacks: PNG encoding, a class palette, saving on rank 0 and logging to TensorBoard.

Every picture callback draws on rank 0 only and finds its folder with :func:`visionkit.paths.output_dir`, which
calls no collective, so it is safe under DDP.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from visionkit.io import atomic_write_bytes
from visionkit.paths import output_dir

__all__ = ["PALETTE", "class_names", "figure_array", "log_picture", "png_bytes", "save_picture", "to_uint8"]

#: distinct RGB colours, one per class index (cycled)
PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255), (170, 110, 40),
           (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0)]


def to_uint8(image: Tensor | np.ndarray, scale: int = 1, rgb: bool = True) -> np.ndarray:
    """An image as uint8 ``(H, W, 3)`` RGB, or ``(H, W)`` for one channel when ``rgb`` is False.

    Args:
        image: ``(C, H, W)`` or ``(H, W, C)`` tensor in [0, 1] (or 0..255), C = 1 or 3, or ``(H, W)``; or a
            uint8 array.
        scale: integer upscaling (nearest), for small images.
        rgb: expand one channel to three.
    """
    if isinstance(image, np.ndarray) and image.dtype == np.uint8:
        arr = image
    else:
        img = torch.as_tensor(image).detach().float().cpu()
        if img.dim() == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
            img = img.permute(1, 2, 0)
        if img.max() > 1.5:  # 0..255 input
            img = img / 255.0
        arr = (img.clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if rgb and arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, -1)
    if scale > 1:
        arr = arr.repeat(scale, 0).repeat(scale, 1)
    return np.ascontiguousarray(arr)


def png_bytes(image: Tensor | np.ndarray, scale: int = 1) -> bytes:
    """PNG encoding of an image (any layout :func:`to_uint8` takes; one channel stays grey)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_uint8(image, scale, rgb=False)).save(buf, format="PNG")
    return buf.getvalue()


def figure_array(fig: Any, dpi: int = 80, close: bool = True) -> np.ndarray:
    """A matplotlib figure rendered to ``(H, W, 3)`` uint8 (and closed)."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def log_picture(trainer: Any, tag: str, picture: np.ndarray) -> None:
    """Send an ``(H, W, 3)`` (or grey ``(H, W)``) uint8 picture to every logger that takes images (TensorBoard)."""
    for logger in trainer.loggers:
        exp = getattr(logger, "experiment", None)
        if exp is not None and hasattr(exp, "add_image"):
            exp.add_image(tag, picture, global_step=trainer.global_step,
                          dataformats="HWC" if picture.ndim == 3 else "HW")


def save_picture(trainer: Any, picture: np.ndarray, folder: str, filename: str, override: str | None = None,
                 tag: str | None = None) -> Path:
    """Write a picture as ``<output folder>/<filename>`` (atomically) and log it under ``tag``.

    Args:
        trainer: the trainer (call on rank 0 only; nothing here is collective).
        picture: ``(H, W, 3)`` or grey ``(H, W)`` uint8.
        folder: sub-folder of the log folder (see :func:`visionkit.paths.output_dir`).
        filename: PNG file name.
        override: a user-set folder that replaces ``<log_dir>/<folder>``.
        tag: logger tag (None: not logged).

    Returns:
        The path written.
    """
    path = output_dir(trainer, folder, override) / filename
    atomic_write_bytes(path, png_bytes(picture))
    if tag is not None:
        log_picture(trainer, tag, picture)
    return path


def class_names(trainer: Any, pl_module: Any, given: list[str] | None = None) -> list[str] | None:
    """Class names for labels in pictures: ``given``, else the task's, else the datamodule's, else None."""
    if given:
        return list(given)
    names = getattr(pl_module, "class_names", None)
    if names:
        return list(names)
    dm = getattr(trainer, "datamodule", None)
    return list(getattr(dm, "class_names", None) or []) or None
