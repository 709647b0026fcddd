"""``BaseTask``: the LightningModule every visionkit task derives from."""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_args

import torch
from lightning.pytorch import LightningModule
from torch import Tensor
from torchmetrics import MetricCollection

from visionkit.finite import check_finite_losses
from visionkit.seed import step_seed

#: optimiser and schedule shortcuts of :class:`BaseTask` (LightningCLI's ``--optimizer``/``--lr_scheduler`` take
#: any torch class instead)
Optimizer = Literal["adamw", "adam", "sgd"]
Scheduler = Literal["cosine", "multistep", "constant"]

ConfigT = TypeVar("ConfigT")


class BaseTask(LightningModule, ABC):
    """Base class of all tasks: a model, its losses, metrics per split and the optimiser.

    A subclass's ``__init__`` signature is its config: it takes plain typed arguments, forwards the
    optimisation arguments below through ``**kwargs`` and then everything is saved with
    ``save_hyperparameters`` and built by the three hooks, in order:

    * :meth:`configure_models` builds ``nn.Module`` s (plain PyTorch, no Lightning inside),
    * :meth:`configure_losses` builds loss modules,
    * :meth:`configure_metrics` calls :meth:`make_metrics` once and clones the ``MetricCollection``
      per split with ``train_``/``val_``/``test_`` prefixes.

    Subclasses implement the three parts of a step, so that one network pass serves the losses and the
    predictions of an evaluation batch:

    * :meth:`compute_outputs` ``(batch) -> outputs``: the network pass (raw outputs, any structure);
    * :meth:`compute_losses` ``(outputs, batch) -> dict``: the losses, key ``"loss"`` optimised;
    * :meth:`postprocess` ``(outputs, batch) -> dict``: the family's predictions (the task contract).

    ``task(batch)`` (:meth:`forward`) is ``postprocess(compute_outputs(batch), batch)``; training steps use
    the first two, validation and test steps all three (losses logged as ``val_<name>``/``test_<name>``),
    then :meth:`update_metrics`.

    Args:
        lr: base learning rate.
        optimizer: ``"adamw"``, ``"adam"`` or ``"sgd"``.
        weight_decay: decoupled (AdamW) or L2 (others) weight decay.
        momentum: SGD momentum.
        scheduler: ``"cosine"`` (per step, to 0), ``"multistep"`` (``milestones`` as fractions of the
            epochs, factor 0.1), ``"constant"``.
        warmup_steps: linear warm-up length in optimiser steps (0 disables).
        milestones: fractions of ``max_epochs`` at which ``multistep`` divides the rate by 10.
    """

    #: metric the default checkpoint callback tracks, and whether higher is better
    monitor: str = "val_loss"
    monitor_mode: str = "min"

    def __init__(
        self,
        lr: float = 1e-3,
        optimizer: Optimizer = "adamw",
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        scheduler: Scheduler = "cosine",
        warmup_steps: int = 0,
        milestones: tuple[float, ...] = (0.67, 0.9),
        _ignore: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        # checked here too for tasks built in Python (the CLI rejects other values while parsing)
        for key, value, kind in (("optimizer", optimizer, Optimizer), ("scheduler", scheduler, Scheduler)):
            if value not in get_args(kind):
                raise ValueError(f"model.init_args.{key}: expected one of {', '.join(get_args(kind))}, got {value!r}")
        self.save_hyperparameters(ignore=["_ignore", *_ignore])
        self.configure_models()
        self.configure_losses()
        self.configure_metrics()

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def configure_models(self) -> None:
        """Build the model(s) from ``self.hparams``."""

    def configure_losses(self) -> None:
        """Build loss modules from ``self.hparams`` (default: none)."""

    def make_metrics(self) -> MetricCollection | None:
        """Return the metric collection for one split, or None."""
        return None

    def configure_metrics(self) -> None:
        """Clone :meth:`make_metrics` into ``train_metrics``, ``val_metrics`` and ``test_metrics``."""
        metrics = self.make_metrics()
        self.train_metrics = metrics.clone(prefix="train_") if metrics is not None else None
        self.val_metrics = metrics.clone(prefix="val_") if metrics is not None else None
        self.test_metrics = metrics.clone(prefix="test_") if metrics is not None else None

    @abstractmethod
    def compute_outputs(self, batch: dict[str, Any]) -> Any:
        """The network pass on a batch: raw outputs that :meth:`compute_losses` and :meth:`postprocess` read."""

    @abstractmethod
    def compute_losses(self, outputs: Any, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Losses of a batch from its outputs; the key ``"loss"`` holds the total that is optimised."""

    @abstractmethod
    def postprocess(self, outputs: Any, batch: dict[str, Any]) -> dict[str, Any]:
        """The family's prediction dict from the outputs of a batch."""

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Inference on a batch dict: the family's prediction dict (call in eval mode)."""
        return self.postprocess(self.compute_outputs(batch), batch)

    def batch_losses(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """The loss dict of a batch (its network pass, then :meth:`compute_losses`), in the current mode."""
        return self.compute_losses(self.compute_outputs(batch), batch)

    def update_metrics(self, metrics: MetricCollection, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        """Feed one batch of predictions to ``metrics`` (override per family)."""
        raise NotImplementedError(f"{type(self).__name__} must implement update_metrics")

    def metrics_for(self, split: str) -> MetricCollection | None:
        return getattr(self, f"{split}_metrics")

    # ------------------------------------------------------------------ steps
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Reseed the global generators per step (dropout, sampling in losses) so that a run resumed from a
        # checkpoint draws the same random numbers as an uninterrupted one.
        torch.manual_seed(step_seed(self.global_step, self.global_rank, salt=1))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        losses = self.batch_losses(batch)
        check_finite_losses(self, losses)
        bs = _batch_size(batch)
        self.log_dict({f"train_{k}": v.detach() for k, v in losses.items()}, prog_bar=False,
                      on_step=True, on_epoch=True, batch_size=bs, sync_dist=False)
        self.log("loss", losses["loss"].detach(), prog_bar=True, on_step=True, on_epoch=False, logger=False)
        return losses["loss"]

    def evaluation_step(self, batch: dict[str, Any], split: str) -> dict[str, Any]:
        """One validation or test batch: one network pass, losses logged, predictions fed to the metrics."""
        outputs = self.compute_outputs(batch)
        losses = self.compute_losses(outputs, batch)
        self.log_dict({f"{split}_{k}": v.detach() for k, v in losses.items()}, on_step=False, on_epoch=True,
                      batch_size=_batch_size(batch), sync_dist=True, prog_bar=(split == "val"))
        preds = self.postprocess(outputs, batch)
        metrics = self.metrics_for(split)
        if metrics is not None:
            self.update_metrics(metrics, preds, batch)
        return preds

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self.evaluation_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self.evaluation_step(batch, "test")

    def _log_metrics(self, split: str) -> None:
        metrics = self.metrics_for(split)
        if metrics is None:
            return
        values = metrics.compute()
        flat = {}
        for k, v in values.items():
            if isinstance(v, dict):
                flat.update({f"{k}_{kk}": vv for kk, vv in v.items()})
            else:
                flat[k] = v
        flat = {k: v for k, v in flat.items() if torch.is_tensor(v) and v.numel() == 1}
        self.log_dict(flat, prog_bar=(split == "val"), sync_dist=False)
        metrics.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        return self(batch)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        if hp.optimizer == "adamw":
            opt = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
        elif hp.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches)) if self._trainer is not None else 1
        warm = int(hp.warmup_steps)
        if hp.scheduler == "multistep":
            epochs = max(1, self.trainer.max_epochs or 1)
            steps_per_epoch = max(1, total // epochs)
            bounds = [int(f * epochs) * steps_per_epoch for f in hp.milestones]
        else:
            bounds = []

        def factor(step: int) -> float:
            w = min(1.0, (step + 1) / warm) if warm > 0 else 1.0
            if hp.scheduler == "cosine":
                return w * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
            if hp.scheduler == "multistep":
                return w * 0.1 ** sum(step >= b for b in bounds)
            return w

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}



def _batch_size(batch: dict[str, Any]) -> int:
    for v in batch.values():
        if torch.is_tensor(v) and v.dim() > 0:
            return int(v.shape[0])
        if isinstance(v, list | tuple):
            return len(v)
    return 1


def model_config(cls: type[ConfigT], value: ConfigT | Mapping[str, Any] | None, key: str) -> ConfigT:
    """A task's network options as the dataclass ``cls`` (a task argument ``model.init_args.<key>``).

    The CLI passes a ``cls``; hyperparameters read back from a checkpoint (``load_from_checkpoint``) hold the
    fields as a plain mapping; ``None`` gives the defaults.

    Raises:
        ValueError: a mapping key that is no field of ``cls``, named as ``model.init_args.<key>.<name>``.
    """
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"model.init_args.{key}: expected a {cls.__name__} or a mapping of its fields, got "
                         f"{type(value).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in value if k not in names]
    if unknown:
        raise ValueError(f"model.init_args.{key}.{unknown[0]}: not an option of {cls.__name__} "
                         f"(options: {', '.join(names)})")
    return cls(**value)


def reject_moved_options(cls: type, kwargs: Mapping[str, Any], key: str) -> None:
    """Refuse task arguments that are fields of the network options ``cls`` (configs and checkpoints written
    before the options moved into ``model.init_args.<key>``), naming the new place."""
    moved = [k for k in kwargs if k in {f.name for f in dataclasses.fields(cls)}]
    if moved:
        raise ValueError(f"model.init_args.{moved[0]}: the network options moved to model.init_args.{key} "
                         f"(model.init_args.{key}.{moved[0]}); {', '.join(moved)} belong there")
