"""Oriented-detection outputs: DOTA Task1 submission files, pictures of boxes, validation previews."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback
from torch import Tensor

from visionkit.callbacks.pictures import PALETTE, class_names, png_bytes, save_picture, to_uint8
from visionkit.callbacks.writer import PredictionWriter
from visionkit.io import atomic_open, atomic_write_bytes
from visionkit.ops.rotated_boxes import obb2poly

__all__ = ["DOTASubmissionWriter", "OBBVisualizer", "draw_obb"]

def draw_obb(
    image: Tensor,
    boxes: Tensor | None = None,
    labels: Tensor | None = None,
    scores: Tensor | None = None,
    gt_boxes: Tensor | None = None,
    class_names: list[str] | None = None,
    score_thr: float = 0.3,
    min_side: int = 384,
) -> np.ndarray:
    """Draw predicted (class colours, with score) and true (white) rotated boxes on an image.

    Args:
        image: ``(3, H, W)`` in [0, 1] (or 0..255).
        boxes: ``(K, 5)`` predicted boxes ``(cx, cy, w, h, theta)``, pixels; labels ``(K,)``, scores ``(K,)``.
        gt_boxes: ``(N, 5)`` true boxes or None.
        class_names: names for the captions.
        score_thr: predictions below are not drawn.
        min_side: small images are upscaled (nearest) so their shorter side is at least this many pixels.

    Returns:
        ``(H', W', 3)`` uint8 picture.
    """
    from PIL import Image, ImageDraw

    arr = to_uint8(image)
    H, W = arr.shape[:2]
    scale = max(1, int(np.ceil(min_side / max(1, min(H, W)))))
    pil = Image.fromarray(arr).resize((W * scale, H * scale), Image.NEAREST)
    draw = ImageDraw.Draw(pil)

    def polys(b: Tensor) -> np.ndarray:
        return (obb2poly(b.detach().float().cpu()).numpy() * scale).reshape(-1, 4, 2)

    if gt_boxes is not None and len(gt_boxes):
        for q in polys(gt_boxes):
            draw.polygon([tuple(p) for p in q], outline=(255, 255, 255), width=max(1, scale // 2))
    if boxes is not None and len(boxes):
        keep = torch.ones(len(boxes), dtype=torch.bool) if scores is None else scores.detach().cpu() >= score_thr
        lab = labels.detach().cpu() if labels is not None else torch.zeros(len(boxes), dtype=torch.long)
        for q, k, s in zip(polys(boxes[keep.to(boxes.device)]), lab[keep].tolist(),
                           (scores.detach().cpu()[keep].tolist() if scores is not None else [None] * int(keep.sum()))):
            color = PALETTE[int(k) % len(PALETTE)]
            draw.polygon([tuple(p) for p in q], outline=color, width=max(1, scale // 2))
            draw.line([tuple(q[0]), tuple(q[1])], fill=(255, 255, 0), width=max(1, scale // 2))  # the w-side at +u
            name = class_names[k] if class_names and k < len(class_names) else str(k)
            text = name if s is None else f"{name} {s:.2f}"
            draw.text((float(q[:, 0].min()), float(q[:, 1].min()) - 10), text, fill=color)
    return np.asarray(pil)


class DOTASubmissionWriter(PredictionWriter):
    """Write DOTA Task1 submission files and pictures of the predictions.

    ``Task1_<class>.txt`` holds one line per detection, ``image_id score x1 y1 x2 y2 x3 y3 x4 y4`` (corners in
    the box order of :func:`~visionkit.ops.rotated_boxes.obb2poly`), sorted by image then decreasing score.
    Every process writes its own part files; after a barrier rank 0 merges them into the final files (written
    atomically) and removes the parts. Pictures (``images/<image_id>.png``) show predictions above
    ``draw_score_thr`` and, when the batch carries them, the true boxes in white.

    Args:
        output_dir: destination folder.
        class_names: class names (default: the task's or the datamodule's ``class_names``).
        draw_images: how many images to draw (0: none, -1: all).
        draw_score_thr: score threshold of drawn predictions.
    """

    def __init__(self, output_dir: str = "predictions", class_names: list[str] | None = None,
                 draw_images: int = 16, draw_score_thr: float = 0.3) -> None:
        super().__init__(output_dir)
        self.class_names = class_names
        self.draw_images = draw_images
        self.draw_score_thr = draw_score_thr
        self._lines: dict[int, list[tuple[str, float, str]]] = defaultdict(list)
        self._drawn = 0

    def on_predict_epoch_start(self, trainer, pl_module) -> None:
        self._lines = defaultdict(list)
        self._drawn = 0
        self._names = class_names(trainer, pl_module, self.class_names)

    def write_batch(self, prediction: dict[str, Any], batch: dict[str, Any], batch_idx: int, rank: int) -> None:
        boxes, scores, labels = prediction["boxes"], prediction["scores"], prediction["labels"]
        ids = batch.get("image_id")
        for i in range(len(boxes)):
            image_id = str(ids[i]) if ids is not None else f"r{rank}_b{batch_idx}_{i}"
            if len(boxes[i]):
                polys = obb2poly(boxes[i].detach().double().cpu()).tolist()
                for poly, s, k in zip(polys, scores[i].detach().cpu().tolist(), labels[i].detach().cpu().tolist()):
                    coords = " ".join(f"{c:.2f}" for c in poly)
                    self._lines[int(k)].append((image_id, float(s), f"{image_id} {s:.4f} {coords}"))
            if self.draw_images < 0 or self._drawn < self.draw_images:
                gt = batch.get("gt_boxes", batch.get("boxes"))
                pic = draw_obb(batch["image"][i], boxes[i], labels[i], scores[i],
                               gt[i] if gt is not None else None, self._names, self.draw_score_thr)
                atomic_write_bytes(self.output_dir / "images" / f"{image_id}.png", png_bytes(pic))
                self._drawn += 1

    def _class_name(self, k: int) -> str:
        names = getattr(self, "_names", None) or self.class_names
        return names[k] if names and k < len(names) else f"class_{k}"

    def _num_classes(self) -> int:
        names = getattr(self, "_names", None) or self.class_names
        return max([len(names or [])] + [k + 1 for k in self._lines])

    def finalize(self, rank: int, world_size: int) -> None:
        """Write this process's part files (one per class, ``.parts/Task1_<class>.rank<r>.txt``)."""
        parts = self.output_dir / ".parts"
        for k in range(self._num_classes()):
            rows = sorted(self._lines.get(k, []), key=lambda r: (r[0], -r[1]))
            with atomic_open(parts / f"Task1_{self._class_name(k)}.rank{rank}.txt", "w", encoding="utf-8") as f:
                f.writelines(r[2] + "\n" for r in rows)

    def merge(self, world_size: int) -> list[Path]:
        """Merge the part files of ``world_size`` processes into ``Task1_<class>.txt`` (rank 0)."""
        parts = self.output_dir / ".parts"
        written = []
        for k in range(self._num_classes()):
            name = self._class_name(k)
            rows = []
            for r in range(world_size):
                p = parts / f"Task1_{name}.rank{r}.txt"
                if p.exists():
                    for line in p.read_text(encoding="utf-8").splitlines():
                        if line.strip():
                            f = line.split(" ", 2)
                            rows.append((f[0], -float(f[1]), line))
            rows.sort()
            out = self.output_dir / f"Task1_{name}.txt"
            with atomic_open(out, "w", encoding="utf-8") as fh:
                fh.writelines(r[2] + "\n" for r in rows)
            written.append(out)
        for r in range(world_size):
            for k in range(self._num_classes()):
                (parts / f"Task1_{self._class_name(k)}.rank{r}.txt").unlink(missing_ok=True)
        if parts.exists() and not any(parts.iterdir()):
            parts.rmdir()
        return written

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.finalize(trainer.global_rank, trainer.world_size)
        trainer.strategy.barrier("dota_writer_parts")
        if trainer.global_rank == 0:
            self.merge(trainer.world_size)
        trainer.strategy.barrier("dota_writer_merged")


class OBBVisualizer(Callback):
    """Log pictures of validation detections (TensorBoard and PNG) every ``every_n_epochs`` epochs (after epoch
    ``e`` when ``e + 1`` is a multiple, counting from 0).

    The first validation batch is drawn: predictions in class colours with scores (the w-side in yellow), true
    boxes in white, up to ``num_images`` side by side. PNGs go to ``<log_dir>/obb_vis/epoch_<e>.png``. Drawing
    happens on rank 0 only and calls no collective (:func:`visionkit.paths.output_dir`), so it is safe under DDP.

    Args:
        every_n_epochs: drawing period in epochs.
        num_images: images per picture.
        score_thr: predictions below are not drawn.
        output_dir: folder of the PNG files (None: ``<log_dir>/obb_vis``).
    """

    def __init__(self, every_n_epochs: int = 1, num_images: int = 4, score_thr: float = 0.3,
                 output_dir: str | None = None) -> None:
        super().__init__()
        self.output_dir = output_dir
        self.every_n_epochs = max(1, every_n_epochs)
        self.num_images = num_images
        self.score_thr = score_thr
        self._sample: dict[str, Any] | None = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx != 0 or trainer.sanity_checking or outputs is None or not isinstance(outputs, dict):
            return
        n = min(self.num_images, len(outputs["boxes"]))
        gt = batch.get("gt_boxes", batch.get("boxes"))
        self._sample = {
            "image": [batch["image"][i].detach().cpu() for i in range(n)],
            "gt": [gt[i].detach().cpu() for i in range(n)] if gt is not None else [None] * n,
            **{k: [outputs[k][i].detach().cpu() for i in range(n)] for k in ("boxes", "scores", "labels")},
        }

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        sample, self._sample = self._sample, None
        if sample is None or trainer.global_rank != 0 or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        names = class_names(trainer, pl_module, None)
        pics = [draw_obb(im, b, k, s, g, names, self.score_thr)
                for im, b, k, s, g in zip(sample["image"], sample["boxes"], sample["labels"], sample["scores"],
                                          sample["gt"])]
        if not pics:
            return
        h = max(p.shape[0] for p in pics)
        pics = [np.pad(p, ((0, h - p.shape[0]), (0, 4), (0, 0))) for p in pics]
        grid = np.concatenate(pics, axis=1)
        save_picture(trainer, grid, "obb_vis", f"epoch_{trainer.current_epoch:03d}.png", self.output_dir, "val/obb")
