"""``MotionPredictionTask``: multi-agent trajectory prediction (EqMotion or the constant-velocity baseline)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection

from visionkit.tasks.base import BaseTask
from visionkit.tasks.motion.baselines import ConstantVelocity
from visionkit.tasks.motion.eqmotion import EqMotion
from visionkit.tasks.motion.metrics import ADE, FDE, MSE, MinADE, MinFDE, MPJPEHorizons

MODELS = ("eqmotion", "constant_velocity")


def masked_ade(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean L2 distance over frames and present agents. pred/target ``(B, A, T, D)``, mask ``(B, A)``."""
    err = (pred - target).norm(dim=-1).mean(-1)  # (B, A)
    m = mask.to(err.dtype)
    return (err * m).sum() / m.sum().clamp_min(1)


def min_of_k_ade(modes: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Best-of-K ADE per agent, averaged over present agents. modes ``(B, K, A, T, D)``."""
    err = (modes - target[:, None]).norm(dim=-1).mean(-1).amin(1)  # (B, A)
    m = mask.to(err.dtype)
    return (err * m).sum() / m.sum().clamp_min(1)


class MotionPredictionTask(BaseTask):
    """Predict ``future (B, A, T_f, D)`` from ``past (B, A, T_p, D)`` and the agent ``mask (B, A)``.

    Loss: ADE (mean L2 over frames and present agents); with ``num_modes > 1`` the best-of-K (minADE) loss, which
    trains the mode closest to the truth. Callbacks may add training-loss terms to ``loss_terms`` (logged under
    their names). The loss dict holds ``ade`` (the data term, minADE with several modes) and the total ``loss``.
    Metrics: ADE, FDE, MSE (per coordinate), with several modes also minADE/minFDE@K, with
    ``mpjpe_horizons_ms`` also MPJPE at those horizons (joints as agents, ``fps`` frames per second).

    Args:
        model: ``"eqmotion"`` or ``"constant_velocity"`` (no parameters: evaluate it with ``validate``/``test``).
        past_len: observed frames ``T_p``.
        future_len: predicted frames ``T_f``.
        dim: spatial dimension ``D``.
        channels: EqMotion geometric channels ``C``.
        hidden: EqMotion invariant width.
        num_layers: EqMotion layers.
        num_categories: edge categories ``K``.
        tau: edge-category softmax temperature.
        num_modes: predicted modes (best-of-K).
        dct: DCT along time at input and output.
        input_scale: data units per model unit (1000 for millimetre data).
        normalize: ``"scene"`` (default): each sample is centred on its agents' mean last observed position and
            divided by its robust extent inside EqMotion (scale-robust: the same network for any scene size or
            unit); ``"none"``: only ``input_scale``.
        mpjpe_horizons_ms: horizons of the MPJPE metric in ms (None: no MPJPE).
        fps: frame rate for the MPJPE horizons.
        **kwargs: optimisation arguments of :class:`~visionkit.tasks.base.BaseTask`.
    """

    monitor = "val_ADE"
    monitor_mode = "min"

    def __init__(
        self,
        model: Literal["eqmotion", "constant_velocity"] = "eqmotion",
        past_len: int = 20,
        future_len: int = 20,
        dim: int = 3,
        channels: int = 64,
        hidden: int = 64,
        num_layers: int = 4,
        num_categories: int = 2,
        tau: float = 1.0,
        num_modes: int = 1,
        dct: bool = False,
        input_scale: float = 1.0,
        normalize: Literal["scene", "none"] = "scene",
        mpjpe_horizons_ms: list[int] | None = None,
        fps: float = 25.0,
        **kwargs: Any,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"model.init_args.model: expected one of {MODELS}, got {model!r}")
        super().__init__(**kwargs)
        #: extra training-loss terms ``name -> fn(task, batch) -> scalar`` (e.g. the equivariance regulariser)
        self.loss_terms: dict[str, Callable[[MotionPredictionTask, dict[str, Any]], Tensor]] = {}

    def configure_models(self) -> None:
        hp = self.hparams
        if hp.model == "constant_velocity":
            self.model: nn.Module = ConstantVelocity(hp.future_len)
        else:
            self.model = EqMotion(
                hp.past_len,
                hp.future_len,
                hp.dim,
                hp.channels,
                hp.hidden,
                hp.num_layers,
                hp.num_categories,
                hp.tau,
                hp.num_modes,
                hp.dct,
                input_scale=hp.input_scale,
                normalize=hp.normalize,
            )

    def make_metrics(self) -> MetricCollection:
        metrics: dict[str, Any] = {"ADE": ADE(), "FDE": FDE(), "MSE": MSE()}
        k = self.hparams.num_modes
        if k > 1:
            metrics[f"minADE{k}"] = MinADE(k)
            metrics[f"minFDE{k}"] = MinFDE(k)
        if self.hparams.mpjpe_horizons_ms:
            metrics["MPJPE"] = MPJPEHorizons(self.hparams.mpjpe_horizons_ms, self.hparams.fps)
        return MetricCollection(metrics, compute_groups=False)

    def compute_outputs(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """The model's prediction dict: ``future (B, A, T_f, D)`` (+ ``modes (B, K, A, T_f, D)``)."""
        return self.model(batch["past"], batch.get("mask"))

    def compute_losses(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        mask = batch.get("mask")
        if mask is None:
            mask = torch.ones(batch["past"].shape[:2], dtype=torch.bool, device=batch["past"].device)
        if "modes" in outputs:
            loss = min_of_k_ade(outputs["modes"], batch["future"], mask)
        else:
            loss = masked_ade(outputs["future"], batch["future"], mask)
        losses = {"ade": loss}
        if self.training:
            for name, term in self.loss_terms.items():
                losses[name] = term(self, batch)
        losses["loss"] = sum(losses.values())
        return losses

    def postprocess(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        return outputs

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Predictions in eval mode without gradients, whatever the task's mode (used by callbacks mid-training)."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            out = super().forward(batch)
        self.train(was_training)
        return out

    def update_metrics(self, metrics: MetricCollection, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        mask = batch.get("mask")
        for metric in metrics.values():
            multi = isinstance(metric, MinADE) and "modes" in preds
            metric.update(preds["modes"] if multi else preds["future"], batch["future"], mask)
