"""The command line: ``python -m visionkit {fit,validate,test,predict,list} --config ...``."""

from __future__ import annotations

import os
import sys
from typing import Any

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from visionkit.callbacks.checkpoint import AtomicCheckpointIO, TaskCheckpoint, verify_checkpoint
from visionkit.callbacks.progress import LogLineProgressBar
from visionkit.errors import VisionKitError
from visionkit.plugins import format_registries, import_builtins, load_plugins


class VisionKitCLI(LightningCLI):
    """LightningCLI with visionkit's base classes in subclass mode and sensible defaults.

    Defaults added when the config does not set them: loggers (TensorBoard + CSV under
    ``trainer.default_root_dir``, by default ``runs/<TaskClass>``), a checkpoint callback keeping
    ``last.ckpt`` and the best checkpoint by the task's monitor in ``<default_root_dir>/checkpoints`` (so
    ``--ckpt_path last`` resumes the latest run), a learning-rate monitor, a rich progress bar on a terminal
    and periodic log lines otherwise, and atomic checkpoint writes.
    """

    def __init__(self, args: list[str] | None = None, run: bool = True, **kwargs: Any) -> None:
        from visionkit.datamodules.base import BaseDataModule
        from visionkit.tasks.base import BaseTask

        kwargs.setdefault("seed_everything_default", 0)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(
            BaseTask,
            BaseDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            args=args,
            run=run,
            **kwargs,
        )

    def instantiate_trainer(self, **kwargs: Any):
        config = self._get(self.config_init, "trainer", default={})
        task_name = type(self.model).__name__
        root = config.get("default_root_dir") or os.path.join("runs", task_name)
        kwargs["default_root_dir"] = root
        logger = config.get("logger")
        if logger is None or logger is True:
            tb = TensorBoardLogger(root, name="", default_hp_metric=False)
            kwargs["logger"] = [tb, CSVLogger(root, name="", version=tb.version)]
        callbacks = list(config.get("callbacks") or [])
        if config.get("enable_checkpointing", True) is not False and not any(
            isinstance(c, ModelCheckpoint) for c in callbacks
        ):
            callbacks.append(TaskCheckpoint(dirpath=os.path.join(root, "checkpoints")))
        if kwargs.get("logger", logger) not in (False, None) and not any(
            isinstance(c, LearningRateMonitor) for c in callbacks
        ):
            callbacks.append(LearningRateMonitor(logging_interval="step"))
        if config.get("enable_progress_bar", True) is not False and not any(
            isinstance(c, ProgressBar) for c in callbacks
        ):
            callbacks.append(RichProgressBar() if sys.stdout.isatty() else LogLineProgressBar())
        kwargs["callbacks"] = callbacks
        if not config.get("plugins"):
            kwargs["plugins"] = [AtomicCheckpointIO()]
        return super().instantiate_trainer(**kwargs)

    def before_fit(self) -> None:
        self._check_ckpt("fit")

    def before_validate(self) -> None:
        self._check_ckpt("validate")

    def before_test(self) -> None:
        self._check_ckpt("test")

    def before_predict(self) -> None:
        self._check_ckpt("predict")

    def _check_ckpt(self, subcommand: str) -> None:
        ckpt = self.config_init[subcommand].get("ckpt_path")
        if ckpt and ckpt not in ("last", "best", "hpc", "registry") and "://" not in str(ckpt):
            verify_checkpoint(ckpt)


def main(args: list[str] | None = None) -> Any:
    """Entry point of ``python -m visionkit`` and the ``visionkit`` console script.

    Imports the built-in families and the plugins, then runs LightningCLI. ``visionkit list`` prints the
    registered tasks, datamodules and backbones. Errors caused by user input (a missing dataset, a malformed
    file, a corrupt checkpoint) are printed as one line naming the culprit, exit status 2.
    """
    argv = list(sys.argv[1:] if args is None else args)
    import_builtins()
    load_plugins()
    if argv[:1] == ["list"]:
        print(format_registries())
        return None
    try:
        return VisionKitCLI(args=argv)
    except VisionKitError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except FileNotFoundError as err:
        print(f"error: {err.filename or ''} {err.strerror or err}".strip(), file=sys.stderr)
        raise SystemExit(2) from None


__all__ = ["VisionKitCLI", "main"]
