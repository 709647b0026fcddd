"""Checkpointing: the task's own monitor, ``last.ckpt``, atomic writes, safe loading, readable errors."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from visionkit.errors import CheckpointError, NonFiniteError
from visionkit.io import atomic_open, load_torch

#: checkpoint key under which :class:`RunConfig` stores the run's resolved ``model`` and ``data`` config
CONFIG_KEY = "visionkit_config"


class TaskCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that keeps ``last.ckpt`` and the best checkpoint by the task's own monitor.

    The metric and its mode come from the task's ``monitor`` / ``monitor_mode`` class attributes unless given.
    """

    def __init__(self, dirpath: str | None = None, monitor: str | None = None, mode: str | None = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("save_last", True)
        kwargs.setdefault("filename", "best-{epoch}-{step}")
        kwargs.setdefault("auto_insert_metric_name", False)
        super().__init__(dirpath=dirpath, monitor=monitor, mode=mode or "min", **kwargs)
        self._monitor_given = monitor is not None
        self._mode_given = mode is not None
        self._last_step_saved_as_last = -1

    def setup(self, trainer, pl_module, stage: str) -> None:
        if not self._monitor_given and getattr(pl_module, "monitor", None):
            self.monitor = pl_module.monitor
            if not self._mode_given:
                self.mode = getattr(pl_module, "monitor_mode", "min")
                self.kth_value, self.kth_best_model_path = self._init_kth(self.mode)
                self.best_model_score = None
        super().setup(trainer, pl_module, stage)

    # Lightning >= 2.6 refreshes ``last.ckpt`` only when a top-k checkpoint was saved at the same step, so a run
    # whose monitored metric stops improving would leave ``last.ckpt`` at the best epoch and ``--ckpt_path last``
    # would resume from there. ``last.ckpt`` is always the latest state here.
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def _refresh_last(self, trainer) -> None:
        from lightning.pytorch.trainer.states import TrainerFn

        if (not self.save_last or trainer.fast_dev_run or trainer.sanity_checking
                or trainer.state.fn != TrainerFn.FITTING or self._last_step_saved_as_last == trainer.global_step):
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_last_checkpoint(self, trainer, monitor_candidates) -> None:
        # ``last.ckpt`` is replaced, never versioned (``last-v1.ckpt``): it is always the run's latest state
        counter, self._enable_version_counter = self._enable_version_counter, False
        try:
            super()._save_last_checkpoint(trainer, monitor_candidates)
        finally:
            self._enable_version_counter = counter
        if self.save_last:
            self._last_step_saved_as_last = trainer.global_step

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        bad = [n for n, p in trainer.lightning_module.state_dict().items()
               if torch.is_tensor(p) and p.is_floating_point() and not bool(torch.isfinite(p).all())]
        if bad:
            more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
            raise NonFiniteError(f"step {trainer.global_step}: not saving {filepath}: non-finite values in "
                                 f"{', '.join(bad[:3])}{more}")
        super()._save_checkpoint(trainer, filepath)

    @staticmethod
    def _init_kth(mode: str):
        inf = torch.tensor(float("inf"))
        return ({"min": inf, "max": -inf}[mode], "")


class RunConfig(Callback):
    """Stores the run's resolved ``model`` and ``data`` config in every checkpoint (key :data:`CONFIG_KEY`).

    ``--ckpt_path last`` compares it with the config of the resuming run and refuses a checkpoint of another
    experiment.

    Args:
        config: ``{"model": {...}, "data": {...}}`` of plain values (strings, numbers, lists, dicts).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.config


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes checkpoints to a temporary file and renames it, so a crash never leaves a truncated file.

    Checkpoints are read with ``weights_only=True`` (tensors and plain values only; see
    :func:`visionkit.io.load_torch`) unless ``trust`` is set, so a planted file cannot run code.

    Args:
        trust: unpickle checkpoints fully (``--trust_checkpoint true``); only for files you made yourself.
    """

    def __init__(self, trust: bool = False) -> None:
        super().__init__()
        self.trust = trust

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        fs = get_filesystem(path)
        if type(fs).__name__ != "LocalFileSystem":
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_open(path, "wb") as f:
            torch.save(checkpoint, f)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        fs = get_filesystem(path)
        if type(fs).__name__ != "LocalFileSystem":
            return super().load_checkpoint(path, map_location=map_location, weights_only=not self.trust)
        verify_checkpoint(path)
        return load_torch(path, map_location=map_location, trust=self.trust or weights_only is False)


def verify_checkpoint(path: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` naming ``path`` unless it is an intact ``torch.save`` archive."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist")
    try:
        with zipfile.ZipFile(p) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise CheckpointError(f"checkpoint {p} is corrupt or truncated ({err})") from None
    if bad is not None:
        raise CheckpointError(f"checkpoint {p} is corrupt: member {bad} fails its CRC check")
