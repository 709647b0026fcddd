"""Hand pictures and prediction files: skeletons per refinement iteration, JSON joints and OBJ meshes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from visionkit.callbacks.pictures import figure_array, save_picture
from visionkit.callbacks.writer import PredictionWriter
from visionkit.io import atomic_open

# (child, parent) bones of one hand in the InterHand order (wrist = 20)
_PARENTS = [1, 2, 3, 20, 5, 6, 7, 20, 9, 10, 11, 20, 13, 14, 15, 20, 17, 18, 19, 20, -1]
_BONES = [(j, p) for j, p in enumerate(_PARENTS) if p >= 0]
_FINGER_COLOURS = ["#e6194b", "#f58231", "#ffe119", "#3cb44b", "#4363d8"]


def project(joints3d: Tensor, K: Tensor) -> Tensor:
    """Pinhole projection ``(B, N, 3)`` camera-space points with ``K (B, 3, 3)`` -> ``(B, N, 2)`` pixels."""
    uvw = joints3d @ K.transpose(-1, -2)
    return uvw[..., :2] / uvw[..., 2:].clamp_min(1e-6)


def draw_skeletons(images: Tensor, columns: list[Tensor], titles: list[str],
                   reference: Tensor | None = None) -> np.ndarray:
    """A grid of skeletons over images: one row per image, one column per joint set.

    Args:
        images: ``(N, 3, H, W)`` in [0, 1].
        columns: list of ``(N, 42, 2)`` pixel joints (InterHand order, right 0-20, left 21-41).
        titles: one title per column.
        reference: optional ``(N, 42, 2)`` true joints, drawn thin in white under every column but the first, so
            each estimate is seen against the truth.

    Returns:
        PNG bytes. Right-hand bones are drawn solid, left-hand bones dashed, coloured per finger.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, c = images.shape[0], len(columns)
    fig, axes = plt.subplots(n, c, figsize=(2.2 * c, 2.2 * n), squeeze=False)
    for i in range(n):
        img = images[i].detach().float().cpu().permute(1, 2, 0).clamp(0, 1).numpy()
        for k in range(c):
            ax = axes[i, k]
            ax.imshow(img)
            uv = columns[k][i].detach().float().cpu().numpy()
            if reference is not None and k > 0:
                ref = reference[i].detach().float().cpu().numpy()
                for h in (0, 1):
                    for j, p in _BONES:
                        a, b = ref[21 * h + j], ref[21 * h + p]
                        ax.plot([a[0], b[0]], [a[1], b[1]], "-", color="white", lw=2.4, alpha=0.6)
            for h, style in ((0, "-"), (1, "--")):
                for j, p in _BONES:
                    a, b = uv[21 * h + j], uv[21 * h + p]
                    ax.plot([a[0], b[0]], [a[1], b[1]], style, color=_FINGER_COLOURS[j // 4], lw=1.2)
            ax.set_xlim(0, img.shape[1])
            ax.set_ylim(img.shape[0], 0)
            ax.axis("off")
            if i == 0:
                ax.set_title(titles[k], fontsize=8)
    fig.tight_layout()
    return figure_array(fig, dpi=80)


class HandSkeletonCallback(Callback):
    """After validation, draws the ground truth and every estimate (initial, then each refinement) of the
    first validation images, logs the picture to TensorBoard and saves it as PNG (on rank 0, without any
    collective call, so it is safe under DDP). After ``test`` it draws the first test images as ``test.png``;
    every estimate is drawn over the true skeleton (thick white).

    Args:
        num_images: images drawn (rows).
        every_n_epochs: drawing period.
        output_dir: folder for ``epoch_XXX.png`` (default: ``<log_dir>/hand_skeletons``).
    """

    def __init__(self, num_images: int = 4, every_n_epochs: int = 1, output_dir: str | None = None) -> None:
        self.num_images, self.every_n_epochs, self.output_dir = num_images, every_n_epochs, output_dir
        self._batch: dict[str, Any] | None = None

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx == 0 and dataloader_idx == 0:
            self._batch = {k: v[: self.num_images] if torch.is_tensor(v) else v for k, v in batch.items()}

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._batch is None or trainer.sanity_checking or trainer.current_epoch % self.every_n_epochs:
            return
        if trainer.global_rank != 0:
            return
        save_picture(trainer, self.render(pl_module, self._batch), "hand_skeletons",
                     f"epoch_{trainer.current_epoch:03d}.png", self.output_dir, "hand_skeletons")
        self._batch = None

    @staticmethod
    def render(pl_module: LightningModule, batch: dict[str, Any]) -> np.ndarray:
        """Picture ``(H, W, 3)`` uint8 of ground truth + each estimate for ``batch`` (the task's forward in eval
        mode)."""
        was = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            preds = pl_module(batch)
        pl_module.train(was)
        K = batch["K"].to(preds["joints3d"])
        cols = [batch["joints2d"]] + [project(j, K) for j in preds["iterations"]]
        titles = ["ground truth", "initial"] + [f"iteration {k}" for k in range(1, len(preds["iterations"]))]
        return draw_skeletons(batch["image"], cols, titles, reference=batch["joints2d"])

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx == 0 and dataloader_idx == 0:
            self._batch = {k: v[: self.num_images] if torch.is_tensor(v) else v for k, v in batch.items()}

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Draws the first test images as ``test.png`` (true skeletons under every estimate)."""
        if self._batch is None or trainer.global_rank != 0:
            return
        save_picture(trainer, self.render(pl_module, self._batch), "hand_skeletons", "test.png", self.output_dir)
        self._batch = None


def write_obj(path: str | Path, vertices: Tensor, faces: Tensor) -> None:
    """Write a triangle mesh as Wavefront OBJ (1-based faces), atomically."""
    v = vertices.detach().double().cpu().tolist()
    f = (faces.detach().long().cpu() + 1).tolist()
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write("".join(f"v {x:.4f} {y:.4f} {z:.4f}\n" for x, y, z in v))
        fh.write("".join(f"f {a} {b} {c}\n" for a, b, c in f))


class HandJSONWriter(PredictionWriter):
    """``predict`` output: one JSON per image with the 42 joints (camera-space mm, pixels) and every estimate;
    with MANO also ``<name>_right.obj`` / ``<name>_left.obj`` meshes (camera space, mm). Files are written
    atomically as ``<output_dir>/r<rank>_b<batch>_<i>.json``; :meth:`finalize` writes ``index_r<rank>.json``.
    """

    def __init__(self, output_dir: str = "predictions") -> None:
        super().__init__(output_dir)
        self._faces: list[Tensor] | None = None
        self._written: list[str] = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx) -> None:
        model = getattr(pl_module, "model", None)
        layers = getattr(model, "hand_layers", None)
        if layers is not None and all(hasattr(lay, "faces") for lay in layers):
            self._faces = [lay.faces for lay in layers]
        super().write_on_batch_end(trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx)

    def write_batch(self, prediction: dict[str, Any], batch: dict[str, Any], batch_idx: int, rank: int) -> None:
        j3d, j2d = prediction["joints3d"], prediction["joints2d"]
        for i in range(j3d.shape[0]):
            name = f"r{rank}_b{batch_idx:06d}_{i:03d}"
            record = {
                "joint_order": "InterHand2.6M: right 0-20, left 21-41, wrist last per hand",
                "joints3d_mm": j3d[i].tolist(),
                "joints2d_px": j2d[i].tolist(),
                "iterations_joints3d_mm": [it[i].tolist() for it in prediction.get("iterations", [])],
            }
            verts = prediction.get("vertices")
            if verts is not None and self._faces is not None:
                V = verts.shape[1] // 2
                for h, side in enumerate(("right", "left")):
                    write_obj(self.output_dir / f"{name}_{side}.obj", verts[i, h * V : (h + 1) * V], self._faces[h])
                record["meshes"] = [f"{name}_right.obj", f"{name}_left.obj"]
            with atomic_open(self.output_dir / f"{name}.json", "w", encoding="utf-8") as fh:
                json.dump(record, fh)
            self._written.append(f"{name}.json")

    def finalize(self, rank: int, world_size: int) -> None:
        with atomic_open(self.output_dir / f"index_r{rank}.json", "w", encoding="utf-8") as fh:
            json.dump({"rank": rank, "world_size": world_size, "files": self._written}, fh)
        self._written = []
