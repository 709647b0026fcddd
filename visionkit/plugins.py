"""Discovery of built-in and external tasks, datamodules and backbones.

External packages plug in through entry points (in their ``pyproject.toml``)::

    [project.entry-points."visionkit.tasks"]
    my_task = "my_pkg.task:MyTask"          # a BaseTask subclass (or a module defining some)
    [project.entry-points."visionkit.datamodules"]
    my_data = "my_pkg.data:MyDataModule"
    [project.entry-points."visionkit.backbones"]
    my_net = "my_pkg.net:build_my_net"      # registered under the entry-point name unless already

Loading an entry point imports its object; ``BaseTask``/``BaseDataModule`` subclasses become available to the
CLI by short class name.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import warnings
from importlib.metadata import entry_points

log = logging.getLogger(__name__)

ENTRY_POINT_GROUPS = ("visionkit.tasks", "visionkit.datamodules", "visionkit.backbones")
_LOADED = False
PLUGIN_ORIGINS: dict[str, str] = {}


def import_builtins() -> None:
    """Import every built-in family so its classes are known by short name."""
    importlib.import_module("visionkit.tasks")
    importlib.import_module("visionkit.datamodules")
    importlib.import_module("visionkit.backbones")


def load_plugins(force: bool = False) -> None:
    """Load the entry points of all three groups once (``force`` reloads).

    A plugin that fails to import is reported as a warning naming it; the others still load.
    """
    global _LOADED
    if _LOADED and not force:
        return
    _LOADED = True
    from visionkit.backbones.registry import BACKBONES

    for group in ENTRY_POINT_GROUPS:
        for ep in entry_points(group=group):
            try:
                obj = ep.load()
            except Exception as err:  # a broken plugin must not take the CLI down
                warnings.warn(f"visionkit plugin {ep.name!r} ({ep.value}) in {group} failed to load: {err}",
                              stacklevel=2)
                continue
            PLUGIN_ORIGINS[f"{group}:{ep.name}"] = ep.value
            if group == "visionkit.backbones" and callable(obj) and ep.name not in BACKBONES:
                BACKBONES[ep.name] = obj


def _concrete_subclasses(base: type) -> list[type]:
    seen, stack, out = set(), list(base.__subclasses__()), []
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        stack.extend(cls.__subclasses__())
        if not inspect.isabstract(cls) and not cls.__name__.startswith("_"):
            out.append(cls)
    return sorted(out, key=lambda c: (c.__module__, c.__name__))


def registered_tasks() -> list[type]:
    """All importable :class:`~visionkit.tasks.base.BaseTask` subclasses (built-ins and plugins)."""
    from visionkit.tasks.base import BaseTask

    return _concrete_subclasses(BaseTask)


def registered_datamodules() -> list[type]:
    """All importable :class:`~visionkit.datamodules.base.BaseDataModule` subclasses."""
    from visionkit.datamodules.base import BaseDataModule

    return _concrete_subclasses(BaseDataModule)


def format_registries() -> str:
    """Human-readable listing of tasks, datamodules and backbones (what ``visionkit list`` prints)."""
    from visionkit.backbones.registry import BACKBONES

    def first_line(obj) -> str:
        doc = inspect.getdoc(obj) or ""
        return doc.splitlines()[0] if doc else ""

    lines = ["Tasks:"]
    lines += [f"  {c.__name__:<34} {c.__module__:<40} {first_line(c)}" for c in registered_tasks()]
    lines += ["DataModules:"]
    lines += [f"  {c.__name__:<34} {c.__module__:<40} {first_line(c)}" for c in registered_datamodules()]
    lines += ["Backbones (plus any timm model name):"]
    lines += [f"  {n:<34} {getattr(f, '__module__', '')}" for n, f in sorted(BACKBONES.items())]
    return "\n".join(lines)
