"""Base prediction writer: turns ``predict_step`` outputs into files, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import BasePredictionWriter


class PredictionWriter(BasePredictionWriter):
    """Calls :meth:`write_batch` for every predicted batch and :meth:`finalize` once at the end.

    Subclasses write their family's native formats under ``output_dir`` with
    :func:`visionkit.io.atomic_open`, so an interrupted ``predict`` never leaves a half-written file.

    Args:
        output_dir: folder for the prediction files (created).
    """

    def __init__(self, output_dir: str = "predictions") -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.write_batch(prediction, batch, batch_idx, trainer.global_rank)

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        self.finalize(trainer.global_rank, trainer.world_size)

    def write_batch(self, prediction: dict[str, Any], batch: dict[str, Any], batch_idx: int, rank: int) -> None:
        """Write one batch of predictions (override)."""
        raise NotImplementedError

    def finalize(self, rank: int, world_size: int) -> None:
        """Called once after the last batch on every rank (override to merge or index files)."""
