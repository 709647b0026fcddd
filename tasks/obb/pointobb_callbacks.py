"""Point-supervised oriented detection outputs: pseudo-label files (DOTA txt) and pictures of points and boxes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback
from torch import Tensor

from visionkit.callbacks.pictures import PALETTE, class_names, save_picture
from visionkit.callbacks.writer import PredictionWriter
from visionkit.ops.rotated_boxes import obb2poly
from visionkit.tasks.obb.callbacks import draw_obb

__all__ = ["PseudoLabelWriter", "PointOBBVisualizer", "draw_points"]


class PseudoLabelWriter(PredictionWriter):
    """Write the pseudo boxes of ``predict`` as DOTA label files, one ``<image_id>.txt`` per image.

    Lines are ``x1 y1 x2 y2 x3 y3 x4 y4 class 0`` in the pixels of the original image: coordinates are divided by
    the batch's ``scale`` (the loader's resize factor) when present. Boxes scoring below ``score_thr`` are left
    out (0 keeps one box per point). The folder can be read back by
    :func:`~visionkit.datamodules.obb.dota.read_dota_txt`, e.g. by
    :class:`~visionkit.datamodules.obb.points.SyntheticPseudoOBB` or as a DOTA ``labelTxt`` folder.

    Args:
        output_dir: folder of the label files (created).
        class_names: class names (default: the task's ``class_names``).
        score_thr: minimum pseudo-box score written.
    """

    def __init__(self, output_dir: str = "pseudo_labels", class_names: list[str] | None = None,
                 score_thr: float = 0.0) -> None:
        super().__init__(output_dir)
        self.class_names = list(class_names) if class_names else None
        self.score_thr = score_thr
        self.count = 0

    def on_predict_epoch_start(self, trainer, pl_module) -> None:
        self.class_names = class_names(trainer, pl_module, self.class_names)
        self.count = 0

    def write_batch(self, prediction: dict[str, Any], batch: dict[str, Any], batch_idx: int, rank: int) -> None:
        from visionkit.datamodules.obb.dota import write_dota_txt

        ids = prediction.get("image_id") or batch.get("image_id")
        scales = batch.get("scale")
        for i, (boxes, scores, labels) in enumerate(zip(prediction["boxes"], prediction["scores"],
                                                        prediction["labels"])):
            keep = scores >= self.score_thr
            boxes, labels = boxes[keep].detach().double().cpu(), labels[keep].cpu()
            if scales is not None:
                s = float(scales[i])
                boxes = torch.cat([boxes[:, :4] / s, boxes[:, 4:]], 1)
            names = [self._name(int(k)) for k in labels.tolist()]
            write_dota_txt(self.output_dir / f"{ids[i]}.txt", obb2poly(boxes), names)
            self.count += 1

    def _name(self, k: int) -> str:
        if self.class_names and k < len(self.class_names):
            return self.class_names[k]
        return f"class_{k}"


def draw_points(picture: np.ndarray, points: Tensor, image_size: tuple[int, int], labels: Tensor | None = None,
                radius: int = 3) -> np.ndarray:
    """Draw point annotations (filled dots with a black ring, class colours) on a picture from :func:`draw_obb`.

    Args:
        picture: ``(H', W', 3)`` uint8 (possibly an upscaled drawing of an ``image_size`` image).
        points: ``(N, 2)`` pixels of the original image.
        image_size: ``(H, W)`` of the original image.
        labels: ``(N,)`` classes for the colours.
        radius: dot radius in picture pixels.
    """
    from PIL import Image, ImageDraw


    scale = picture.shape[0] / image_size[0]
    pil = Image.fromarray(picture)
    draw = ImageDraw.Draw(pil)
    lab = labels.tolist() if labels is not None else [0] * len(points)
    for (x, y), k in zip((points.detach().float().cpu() * scale).tolist(), lab):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=PALETTE[int(k) % len(PALETTE)],
                     outline=(0, 0, 0))
    return np.asarray(pil)


class PointOBBVisualizer(Callback):
    """Log pictures of points, pseudo boxes and true boxes of the first validation batch (PNG and TensorBoard).

    True boxes are white, pseudo boxes in class colours with their score (w-side in yellow), points as dots.
    PNGs go to ``<log_dir>/pointobb_vis/epoch_<e>.png``. Drawing happens on rank 0 only and calls no collective
    (:func:`visionkit.paths.output_dir`), so it is safe under DDP.

    Args:
        every_n_epochs: drawing period in epochs.
        num_images: images per picture.
        output_dir: folder of the PNG files (None: ``<log_dir>/pointobb_vis``).
    """

    def __init__(self, every_n_epochs: int = 1, num_images: int = 4, output_dir: str | None = None) -> None:
        super().__init__()
        self.output_dir = output_dir
        self.every_n_epochs = max(1, every_n_epochs)
        self.num_images = num_images
        self._sample: dict[str, Any] | None = None
        self.last_path: Path | None = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx != 0 or trainer.sanity_checking or not isinstance(outputs, dict):
            return
        n = min(self.num_images, len(outputs["boxes"]))
        gt = batch.get("gt_boxes")
        self._sample = {
            "image": [batch["image"][i].detach().cpu() for i in range(n)],
            "gt": [gt[i].detach().cpu() for i in range(n)] if gt is not None else [None] * n,
            "points": [batch["points"][i].detach().cpu() for i in range(n)],
            **{k: [outputs[k][i].detach().cpu() for i in range(n)] for k in ("boxes", "scores", "labels")},
        }

    def render(self, sample: dict[str, Any], class_names: list[str] | None = None) -> np.ndarray:
        """One picture ``(H, W', 3)`` uint8 of the images of ``sample`` side by side."""
        pics = []
        for im, b, k, s, g, p in zip(sample["image"], sample["boxes"], sample["labels"], sample["scores"],
                                     sample["gt"], sample["points"]):
            pic = draw_obb(im, b, k, s, g, class_names, score_thr=0.0)
            pics.append(draw_points(pic, p, tuple(im.shape[-2:]), k))
        h = max(p.shape[0] for p in pics)
        pics = [np.pad(p, ((0, h - p.shape[0]), (0, 4), (0, 0))) for p in pics]
        return np.concatenate(pics, axis=1)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        sample, self._sample = self._sample, None
        if sample is None or not sample["image"] or trainer.global_rank != 0 or \
                trainer.current_epoch % self.every_n_epochs:
            return
        grid = self.render(sample, class_names(trainer, pl_module, None))
        self.last_path = save_picture(trainer, grid, "pointobb_vis", f"epoch_{trainer.current_epoch:03d}.png",
                                      self.output_dir, "val/pointobb")
