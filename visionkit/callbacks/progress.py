"""A progress bar for non-interactive runs: a plain log line every few percent of an epoch."""

from __future__ import annotations

import sys
import time

from lightning.pytorch.callbacks import ProgressBar


class LogLineProgressBar(ProgressBar):
    """Prints ``epoch 3 [120/400] loss=0.512 ...`` lines, about ``lines_per_epoch`` times per epoch.

    Used instead of the rich bar when standard output is not a terminal (logs, CI, SLURM).
    """

    def __init__(self, lines_per_epoch: int = 4) -> None:
        super().__init__()
        self.lines_per_epoch = max(1, lines_per_epoch)
        self._enabled = True
        self._t0 = time.time()

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _print(self, msg: str) -> None:
        if self._enabled and self.trainer.is_global_zero:
            print(msg, file=sys.stdout, flush=True)

    def _fmt(self, metrics: dict) -> str:
        items = []
        for k, v in metrics.items():
            if k == "v_num":
                continue
            try:
                items.append(f"{k}={float(v):.4g}")
            except (TypeError, ValueError):
                continue
        return " ".join(items)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = time.time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        total = self.total_train_batches
        if not isinstance(total, int) or total <= 0:
            return
        every = max(1, total // self.lines_per_epoch)
        if (batch_idx + 1) % every == 0 or batch_idx + 1 == total:
            self._print(f"epoch {trainer.current_epoch} [{batch_idx + 1}/{total}] "
                        f"{time.time() - self._t0:.0f}s {self._fmt(self.get_metrics(trainer, pl_module))}")

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        vals = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val")}
        self._print(f"epoch {trainer.current_epoch} validation: {self._fmt(vals)}")

    def on_test_end(self, trainer, pl_module) -> None:
        vals = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("test")}
        self._print(f"test: {self._fmt(vals)}")
