"""The command line: ``python -m visionkit {fit,validate,test,predict,list} --config ...``."""

from __future__ import annotations

import os
import re
import sys
import warnings
from argparse import ArgumentError
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


def _argv_value(argv: list[str], flag: str) -> str | None:
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _condense_parser_error(text: str) -> str:
    """Reduce jsonargparse's nested union report to the line that names the culprit."""
    key = re.search(r'Parser key "([^"]+)"', text)
    prefix = f"{key.group(1)}: " if key else ""
    for pattern in (r"(Option '[^']+' is not accepted)", r"(Key \S+ is not expected)",
                    r"(Problem with given class_path '[^']+':[^\n]*)", r'(Unrecognized arguments: [^\n]+)',
                    r"(Import path \S+ does not \S+ to a class)", r"(No action for key \S+[^\n]*)"):
        m = re.search(pattern, text)
        if m:
            bad = re.search(r"class_path '([^']+)'", text)
            where = f" (in {bad.group(1)})" if bad and "class_path" not in m.group(1) else ""
            return f"{prefix}{m.group(1)}{where}"
    unknown = re.search(r"Expected a path but (\S+) either not accessible or invalid", text) or re.search(
        r"Import path (\S+) does not", text)
    if unknown:
        from visionkit.plugins import registered_datamodules, registered_tasks

        kind = registered_datamodules() if prefix.startswith("data") else registered_tasks()
        names = ", ".join(c.__name__ for c in kind)
        return f"{prefix}unknown class {unknown.group(1)!r}; known: {names} (or a full import path)"
    first = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return prefix + (first[1] if key and len(first) > 1 else (first[0] if first else text))


def main(args: list[str] | None = None) -> Any:
    """Entry point of ``python -m visionkit`` and the ``visionkit`` console script.

    Imports the built-in families and the plugins, then runs LightningCLI. ``visionkit list`` prints the
    registered tasks, datamodules and backbones. Errors caused by user input (a missing dataset, a malformed
    file, a corrupt checkpoint) are printed as one line naming the culprit, exit status 2.
    """
    argv = list(sys.argv[1:] if args is None else args)
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended.*")
    warnings.filterwarnings("ignore", message=".*Experiment logs directory .* exists and is not empty.*")
    import_builtins()
    load_plugins()
    if argv[:1] == ["list"]:
        print(format_registries())
        return None
    try:
        # a checkpoint is read while the config is parsed (hyperparameters), so check it first
        ckpt = _argv_value(argv, "--ckpt_path")
        if ckpt and ckpt not in ("last", "best", "hpc", "null", "None") and "://" not in ckpt:
            verify_checkpoint(ckpt)
        return VisionKitCLI(args=args, parser_kwargs={"exit_on_error": False, "allow_abbrev": False})
    except ArgumentError as err:
        print(f"error: {_condense_parser_error(str(err))}", file=sys.stderr)
        print("run with --help (or --print_config) to see the accepted options", file=sys.stderr)
        raise SystemExit(2) from None
    except VisionKitError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except FileNotFoundError as err:
        print(f"error: {err.filename or ''} {err.strerror or err}".strip(), file=sys.stderr)
        raise SystemExit(2) from None


__all__ = ["VisionKitCLI", "main"]
