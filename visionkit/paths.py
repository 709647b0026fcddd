"""Where callbacks and writers put their files, found without any collective call (rank-safe under DDP).

``trainer.log_dir`` broadcasts rank 0's folder to every process: it is a collective, so code that reads it
on rank 0 only (pictures are drawn on rank 0) waits forever for the other processes. :func:`run_dir` reads
the same folder from this process's own logger instead, and :func:`output_dir` is the one way callbacks and
prediction writers choose a folder.

The rule (docs/architecture.md, "Rank safety"): a hook that runs on rank 0 only calls no collective
(``trainer.log_dir``, ``strategy.broadcast``/``barrier``, ``self.log(..., sync_dist=True)``, metric
``compute``); a collective is reached by every rank at the same point or by none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["output_dir", "run_dir"]


def run_dir(trainer: Any) -> Path:
    """The run folder that ``trainer.log_dir`` names, read without its broadcast.

    The folder is the first logger's ``log_dir`` (TensorBoard, CSV: ``<root>/version_<n>``), else its
    ``save_dir``, else ``trainer.default_root_dir`` (no logger). On rank 0 this is exactly ``trainer.log_dir``.
    Loggers on other ranks do not create their folders, so there the version may differ: write into this
    folder from rank 0 only, and let every rank write to an explicit folder they share (``output_dir=``).

    Args:
        trainer: a Lightning ``Trainer`` (or any object with ``loggers`` and ``default_root_dir``).
    """
    loggers = list(getattr(trainer, "loggers", None) or [])
    if loggers:
        first = loggers[0]
        folder = getattr(first, "log_dir", None) or getattr(first, "save_dir", None)
        if folder:
            return Path(folder)
    return Path(getattr(trainer, "default_root_dir", None) or ".")


def output_dir(trainer: Any, name: str, override: str | Path | None = None) -> Path:
    """The folder a callback writes its files to: ``override`` when given, else ``run_dir(trainer) / name``.

    Calls no collective, so it may be used in any hook on any subset of ranks.

    Args:
        trainer: the running ``Trainer``.
        name: sub-folder of the run folder (e.g. ``"obb_vis"``).
        override: an explicit folder (a callback's ``output_dir`` argument), used as given.
    """
    return Path(override) if override else run_dir(trainer) / name
