"""Motion-family callbacks: trajectory pictures, NPZ prediction files, an equivariance regulariser."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor, nn

from visionkit.callbacks.pictures import figure_array, save_picture
from visionkit.callbacks.writer import PredictionWriter
from visionkit.io import atomic_open, atomic_write_text
from visionkit.ops.rotations import random_rotation


def plot_trajectories(past: Tensor, future: Tensor | None, pred: Tensor, mask: Tensor | None = None,
                      modes: Tensor | None = None, title: str = ""):
    """Draw one scene: past (solid), true future (dashed), predicted future (dotted) per agent, in the x-y plane.

    Args:
        past: ``(A, T_p, D)``; future: ``(A, T_f, D)`` or None; pred: ``(A, T_f, D)``; mask: ``(A,)`` bool;
        modes: optional ``(K, A, T_f, D)`` alternative predictions drawn faintly.

    Returns:
        A matplotlib Figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keep = torch.ones(past.shape[0], dtype=torch.bool) if mask is None else mask.bool().cpu()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    colours = plt.get_cmap("tab10")
    for a in torch.nonzero(keep).flatten().tolist():
        c = colours(a % 10)
        p = past[a].detach().cpu().numpy()
        ax.plot(p[:, 0], p[:, 1], "-", color=c, lw=1.5)
        ax.plot(p[-1, 0], p[-1, 1], "o", color=c, ms=3)
        if modes is not None:
            for k in range(modes.shape[0]):
                q = np.concatenate([p[-1:], modes[k, a].detach().cpu().numpy()])
                ax.plot(q[:, 0], q[:, 1], "-", color=c, lw=0.5, alpha=0.3)
        if future is not None:
            f = np.concatenate([p[-1:], future[a].detach().cpu().numpy()])
            ax.plot(f[:, 0], f[:, 1], "--", color=c, lw=1.2)
        q = np.concatenate([p[-1:], pred[a].detach().cpu().numpy()])
        ax.plot(q[:, 0], q[:, 1], ":", color=c, lw=1.8)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title or "past — / true -- / predicted ··", fontsize=8)
    fig.tight_layout()
    return fig


class TrajectoryPlotter(Callback):
    """Every ``every_n_epochs`` validation epochs, draw the first ``num_scenes`` scenes of the first validation batch.

    The pictures go to TensorBoard (``trajectories/<i>``, when a TensorBoard logger is attached) and are saved as
    ``<output_dir>/epoch<NNN>_scene<i>.png`` (default ``output_dir``: ``<log_dir>/trajectories``).

    Args:
        num_scenes: scenes drawn per epoch.
        every_n_epochs: drawing period.
        output_dir: folder of the PNG files (None: next to the logs).
    """

    def __init__(self, num_scenes: int = 4, every_n_epochs: int = 1, output_dir: str | None = None) -> None:
        self.num_scenes, self.every_n_epochs = num_scenes, every_n_epochs
        self.output_dir = output_dir
        self._scene: dict[str, Tensor] | None = None

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx != 0 or dataloader_idx != 0 or not isinstance(outputs, dict) or "future" not in outputs:
            return
        n = self.num_scenes
        self._scene = {"past": batch["past"][:n].cpu(), "future": batch["future"][:n].cpu(),
                       "pred": outputs["future"][:n].cpu(),
                       "mask": batch["mask"][:n].cpu() if "mask" in batch else None,
                       "modes": outputs["modes"][:n].cpu() if "modes" in outputs else None}

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._scene is None or trainer.sanity_checking or trainer.global_rank != 0:
            return
        if trainer.current_epoch % self.every_n_epochs:
            return
        s, self._scene = self._scene, None
        for i in range(s["past"].shape[0]):
            fig = plot_trajectories(s["past"][i], s["future"][i], s["pred"][i],
                                    None if s["mask"] is None else s["mask"][i],
                                    None if s["modes"] is None else s["modes"][i],
                                    title=f"epoch {trainer.current_epoch} scene {i}")
            save_picture(trainer, figure_array(fig, dpi=100), "trajectories",
                         f"epoch{trainer.current_epoch:03d}_scene{i}.png", self.output_dir, f"trajectories/{i}")


class NPZWriter(PredictionWriter):
    """Writes ``predict`` outputs as one ``.npz`` per batch and rank, atomically.

    File ``<output_dir>/pred_rank<r>_batch<NNNNN>.npz`` holds ``future`` (predicted, ``(B, A, T_f, D)``),
    ``modes`` (if multi-modal), and from the batch ``past``, ``mask`` and the true ``future`` as ``target``
    (when present). ``finalize`` writes ``index_rank<r>.json`` listing the rank's files in order.
    """

    def __init__(self, output_dir: str = "predictions") -> None:
        super().__init__(output_dir)
        self._files: list[str] = []

    def write_batch(self, prediction: dict[str, Any], batch: dict[str, Any], batch_idx: int, rank: int) -> None:
        arrays = {k: v.detach().cpu().numpy() for k, v in prediction.items() if torch.is_tensor(v)}
        for key, name in (("past", "past"), ("mask", "mask"), ("future", "target")):
            if torch.is_tensor(batch.get(key)):
                arrays[name] = batch[key].detach().cpu().numpy()
        name = f"pred_rank{rank}_batch{batch_idx:05d}.npz"
        with atomic_open(self.output_dir / name, "wb") as f:
            np.savez(f, **arrays)
        self._files.append(name)

    def finalize(self, rank: int, world_size: int) -> None:
        atomic_write_text(self.output_dir / f"index_rank{rank}.json",
                          json.dumps({"rank": rank, "world_size": world_size, "files": self._files}, indent=1))
        self._files = []


class EquivarianceRegulariser(Callback):
    """Adds ``λ · mean ‖f(g X) − g f(X)‖²`` to the training loss, for backbones that are not equivariant.

    ``g`` is a random rotation (with a random reflection when ``reflections``) and translation drawn per sample
    and step. The callback registers the term in the task's ``loss_terms`` (see
    :class:`~visionkit.tasks.motion.prediction.MotionPredictionTask`), so it is part of the loss that the task
    computes inside its (DDP-wrapped) training step and is logged as ``train_equivariance``. For an exactly
    equivariant model (EqMotion) the penalty is zero up to rounding.

    Args:
        weight: ``λ``.
        translation_std: standard deviation of the random translation.
        reflections: also draw improper rotations (det −1).
    """

    def __init__(self, weight: float = 0.1, translation_std: float = 1.0, reflections: bool = True) -> None:
        self.weight, self.translation_std, self.reflections = weight, translation_std, reflections

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        terms = getattr(pl_module, "loss_terms", None)
        if not isinstance(terms, dict):
            raise TypeError(f"EquivarianceRegulariser needs a task with a loss_terms dict (MotionPredictionTask), "
                            f"got {type(pl_module).__name__}")
        terms["equivariance"] = lambda task, batch: self.weight * self.penalty(task, batch)

    @staticmethod
    def random_transform(dim: int, batch: int, dtype: torch.dtype, device: torch.device,
                         reflections: bool) -> Tensor:
        """Random orthogonal matrices ``(B, D, D)`` (Haar on SO(3) for D = 3, uniform angle for D = 2)."""
        if dim == 3:
            R = random_rotation(batch, dtype=dtype, device=device)
        elif dim == 2:
            a = torch.rand(batch, dtype=dtype, device=device) * 2 * torch.pi
            c, s = a.cos(), a.sin()
            R = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
        else:
            R = torch.linalg.qr(torch.randn(batch, dim, dim, dtype=dtype, device=device))[0]
        if reflections:
            flip = torch.where(torch.rand(batch, device=device) < 0.5, -1.0, 1.0).to(dtype)
            R = R.clone()
            R[:, :, 0] = R[:, :, 0] * flip[:, None]
        return R

    def penalty(self, pl_module: nn.Module, batch: dict[str, Any]) -> Tensor:
        """``mean ‖f(g X) − g f(X)‖²`` over present agents and frames for ``pl_module.model`` (unweighted)."""
        past, mask = batch["past"], batch.get("mask")
        B, D = past.shape[0], past.shape[-1]
        R = self.random_transform(D, B, past.dtype, past.device, self.reflections)[:, None]  # (B, 1, D, D)
        t = torch.randn(B, 1, 1, D, dtype=past.dtype, device=past.device) * self.translation_std
        f = pl_module.model(past, mask)["future"]
        fg = pl_module.model(past @ R.transpose(-1, -2) + t, mask)["future"]
        diff = fg - (f @ R.transpose(-1, -2) + t)  # (B, A, T_f, D)
        m = torch.ones(past.shape[:2], device=past.device) if mask is None else mask.to(past.dtype)
        return ((diff ** 2).sum(-1).mean(-1) * m).sum() / m.sum().clamp_min(1)
