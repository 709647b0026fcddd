"""Point-cloud pictures and PLY prediction files.

* :class:`PointCloudPictures` draws a few validation clouds as matplotlib 3D scatters coloured by the predicted
  part (segmentation) or titled with the predicted/true class (classification), logs the figure to TensorBoard
  and saves it as PNG.
* :class:`PLYWriter` writes every predicted cloud as a binary little-endian PLY with per-vertex ``label``
  (predicted part, or the predicted class of the cloud) and, when known, ``truth``, atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback

from visionkit.callbacks.pictures import figure_array, save_picture
from visionkit.callbacks.writer import PredictionWriter
from visionkit.io import atomic_open


def ply_bytes(points: np.ndarray, **int_props: np.ndarray) -> bytes:
    """Binary little-endian PLY of ``points (N, 3)`` float32 with extra per-vertex int32 properties ``(N,)``."""
    n = len(points)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")] + [(k, "<i4") for k in int_props]
    arr = np.empty(n, dtype=fields)
    arr["x"], arr["y"], arr["z"] = points[:, 0], points[:, 1], points[:, 2]
    for k, v in int_props.items():
        arr[k] = v
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}",
              "property float x", "property float y", "property float z",
              *[f"property int {k}" for k in int_props], "end_header"]
    return ("\n".join(header) + "\n").encode("ascii") + arr.tobytes()


def read_ply_labels(path: str | Path) -> dict[str, np.ndarray]:
    """Read a PLY written by :func:`ply_bytes` back into arrays (``points`` and the int properties)."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    n = int(next(h for h in header if h.startswith("element vertex")).split()[-1])
    props = [h.split() for h in header if h.startswith("property")]
    dtype = [(p[2], "<f4" if p[1] == "float" else "<i4") for p in props]
    arr = np.frombuffer(data[end:], dtype=dtype, count=n)
    out = {"points": np.stack([arr["x"], arr["y"], arr["z"]], -1)}
    out.update({p[2]: arr[p[2]].copy() for p in props if p[1] == "int"})
    return out


def _predicted_labels(prediction: dict[str, Any]) -> torch.Tensor:
    pred = prediction.get("pred")
    return pred if pred is not None else prediction["logits"].argmax(-1)


class PLYWriter(PredictionWriter):
    """Writes ``<output_dir>/cloud_<index>.ply`` per predicted cloud (``index`` from the batch when present).

    Args:
        output_dir: destination folder.
    """

    def write_batch(self, prediction: dict[str, Any], batch: dict[str, Any], batch_idx: int, rank: int) -> None:
        points = batch["points"].detach().cpu().numpy()
        labels = _predicted_labels(prediction).detach().cpu().numpy()
        B, N = points.shape[:2]
        truth = batch.get("seg") if labels.ndim == 2 else batch.get("label")
        truth = truth.detach().cpu().numpy() if torch.is_tensor(truth) else None
        index = batch.get("index")
        for i in range(B):
            key = int(index[i]) if torch.is_tensor(index) else f"{rank}_{batch_idx}_{i}"
            props = {"label": np.broadcast_to(labels[i], (N,))}
            if truth is not None:
                props["truth"] = np.broadcast_to(truth[i], (N,))
            with atomic_open(self.output_dir / f"cloud_{key}.ply", "wb") as f:
                f.write(ply_bytes(points[i], **props))


class PointCloudPictures(Callback):
    """Logs a grid of validation clouds coloured by predicted part / titled with predicted class.

    Args:
        num_samples: clouds drawn from the first validation batch.
        output_dir: folder of the PNG files (``<output_dir>/epoch_<e>.png``); None: ``<log_dir>/pictures``.
            Drawn on rank 0 only, without any collective call (safe under DDP).
        every_n_epochs: draw every n-th validation epoch.
    """

    def __init__(self, num_samples: int = 4, output_dir: str | None = None, every_n_epochs: int = 1) -> None:
        self.num_samples, self.output_dir, self.every = num_samples, output_dir, every_n_epochs
        self._sample: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0 and isinstance(outputs, dict) and "logits" in outputs:
            k = self.num_samples
            pred = outputs["logits"][:k].argmax(-1).detach().cpu()
            truth = batch.get("seg", batch.get("label"))
            self._sample = (batch["points"][:k].detach().cpu(), pred,
                            truth[:k].detach().cpu() if torch.is_tensor(truth) else None)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self._sample is None or trainer.sanity_checking or trainer.current_epoch % self.every:
            return
        if trainer.global_rank != 0:
            self._sample = None
            return
        picture = figure_array(render_clouds(*self._sample))
        save_picture(trainer, picture, "pictures", f"epoch_{trainer.current_epoch:03d}.png", self.output_dir,
                     "val/pointclouds")
        self._sample = None


def render_clouds(points: torch.Tensor, pred: torch.Tensor, truth: torch.Tensor | None = None):
    """A matplotlib figure with one 3D scatter per cloud.

    Args:
        points: ``(B, N, 3)``.
        pred: ``(B, N)`` predicted parts (points coloured by part) or ``(B,)`` predicted classes (in the title).
        truth: ground truth of the same shape, shown in the titles.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    B = points.shape[0]
    fig = plt.figure(figsize=(3 * B, 3.2))
    for i in range(B):
        ax = fig.add_subplot(1, B, i + 1, projection="3d")
        p = points[i].numpy()
        if pred.dim() == 2:
            ax.scatter(p[:, 0], p[:, 1], p[:, 2], c=pred[i].numpy(), cmap="tab20", s=2, vmin=0, vmax=19)
            title = "parts" if truth is None else f"point acc {(pred[i] == truth[i]).float().mean():.2f}"
        else:
            ax.scatter(p[:, 0], p[:, 1], p[:, 2], c=p[:, 2], cmap="viridis", s=2)
            title = f"pred {int(pred[i])}" + ("" if truth is None else f" / true {int(truth[i])}")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    return fig
