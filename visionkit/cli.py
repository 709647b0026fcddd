"""The command line: ``python -m visionkit {fit,validate,test,predict,list} --config ...``."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from argparse import ArgumentError
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from visionkit.callbacks.checkpoint import CONFIG_KEY, AtomicCheckpointIO, RunConfig, TaskCheckpoint, verify_checkpoint
from visionkit.callbacks.progress import LogLineProgressBar
from visionkit.errors import CheckpointError, ConfigError, VisionKitError
from visionkit.io import load_torch
from visionkit.plugins import format_registries, import_builtins, load_plugins


class VisionKitCLI(LightningCLI):
    """LightningCLI with visionkit's base classes in subclass mode and sensible defaults.

    Defaults added when the config does not set them: loggers (TensorBoard + CSV under
    ``trainer.default_root_dir``, by default :func:`default_run_dir`: ``runs/<config folder>/<config name>``),
    a checkpoint callback keeping ``last.ckpt`` and the best checkpoint by the task's monitor in
    ``<default_root_dir>/checkpoints`` (so ``--ckpt_path last`` resumes this config's run), a learning-rate
    monitor, a rich progress bar on a terminal and periodic log lines otherwise, and atomic checkpoint writes
    that load with ``weights_only=True``.

    Checks before anything runs: the task and datamodule fit together, a checkpoint's task class is the
    config's, ``--ckpt_path last`` exists and was written with the same model (and, for ``fit``, data)
    config, checkpoint and prediction folders are writable, and ``test`` / ``predict`` have weights to
    evaluate (``--ckpt_path``, or ``--allow_untrained true``).
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
            auto_configure_optimizers=True,
            args=args,
            run=run,
            **kwargs,
        )

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--trust_checkpoint", type=bool, default=False,
                            help="unpickle checkpoints fully (weights_only=False); this runs any code a file "
                                 "holds: only for checkpoints you made yourself")
        parser.add_argument("--allow_untrained", type=bool, default=False,
                            help="let test/predict run without --ckpt_path (evaluates freshly built weights)")
        parser.add_argument("--clear_predictions", type=bool, default=False,
                            help="predict: empty the prediction writers' output folders first instead of "
                                 "refusing to write beside an earlier run's files")

    def _parse_ckpt_path(self) -> None:
        # Lightning reads the hyperparameters of --ckpt_path into the model config; here the file is verified
        # first, read without unpickling objects, and its task class must be the config's.
        sub = self.config.get("subcommand")
        if not sub:
            return
        cfg = self.config[sub]
        ckpt_path = cfg.get("ckpt_path")
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        verify_checkpoint(ckpt_path)
        hparams = dict(load_torch(ckpt_path, trust=bool(cfg.get("trust_checkpoint"))).get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        _check_task_class(ckpt_path, hparams.get("_class_path"), cfg.get("model"))
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        self.config = self.parser.parse_object({sub: {"model": hparams}}, self.config)

    def before_instantiate_classes(self) -> None:
        sub = self.config.get("subcommand")
        cfg = self.config[sub] if sub else self.config
        if cfg.get("model") is not None and cfg.get("data") is not None:
            link_data_to_model(cfg["data"], cfg["model"])

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (VisionKitError, ArgumentError):
            raise
        except Exception as err:  # any error while a class is built is a config problem: say which class
            if os.environ.get("VISIONKIT_TRACEBACK"):
                raise
            root = err
            while root.__cause__ is not None:  # jsonargparse wraps the constructor's error
                root = root.__cause__
            if isinstance(root, VisionKitError):
                raise root from None
            raise ConfigError(f"{self._building(root)}: {type(root).__name__}: {_one_line(root)}") from err
        _check_families(self.model, self.datamodule)

    def _building(self, err: BaseException) -> str:
        """Which part was being built when ``err`` was raised: ``model (Class)``, ``data (Class)`` or ``trainer``."""
        from visionkit.datamodules.base import BaseDataModule
        from visionkit.tasks.base import BaseTask

        tb = err.__traceback__
        while tb is not None:
            obj = tb.tb_frame.f_locals.get("self")
            if isinstance(obj, BaseTask):
                return f"model ({type(obj).__name__})"
            if isinstance(obj, BaseDataModule):
                return f"data ({type(obj).__name__})"
            tb = tb.tb_next
        return "trainer" if getattr(self, "model", None) is not None else "config"

    def _run_config(self) -> dict[str, Any]:
        """The resolved ``model`` and ``data`` config as plain values (what checkpoints store)."""
        self._dump_config()
        dump = self.config_dump
        return json.loads(json.dumps({"model": dump.get("model"), "data": dump.get("data")}, default=str))

    def instantiate_trainer(self, **kwargs: Any):
        config = self._get(self.config_init, "trainer", default={})
        sub_cfg = self.config_init[self.subcommand] if self.subcommand else self.config_init
        root = config.get("default_root_dir") or default_run_dir(sub_cfg.get("config"), type(self.model).__name__)
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
        callbacks.append(RunConfig(self._run_config()))
        kwargs["callbacks"] = callbacks
        if not config.get("plugins"):
            kwargs["plugins"] = [AtomicCheckpointIO(trust=bool(sub_cfg.get("trust_checkpoint")))]
        return super().instantiate_trainer(**kwargs)

    def before_fit(self) -> None:
        for cb in self.trainer.checkpoint_callbacks:
            if getattr(cb, "dirpath", None):
                _check_writable(cb.dirpath, "checkpoint folder")
        self._check_ckpt("fit")

    def before_validate(self) -> None:
        self._check_ckpt("validate")

    def before_test(self) -> None:
        self._check_ckpt("test")

    def before_predict(self) -> None:
        from lightning.pytorch.callbacks import BasePredictionWriter
        from lightning.pytorch.utilities import rank_zero_only

        clear = bool(self.config_init["predict"].get("clear_predictions"))
        for cb in self.trainer.callbacks:
            out = getattr(cb, "output_dir", None)
            if not isinstance(cb, BasePredictionWriter) or out is None or rank_zero_only.rank != 0:
                continue  # other ranks start after rank 0 has checked (and they must not see its new files)
            _check_fresh(Path(out), clear)
            _check_writable(out, "prediction folder")
        self._check_ckpt("predict")

    def _check_ckpt(self, subcommand: str) -> None:
        cfg = self.config_init[subcommand]
        ckpt = cfg.get("ckpt_path")
        if ckpt == "last":
            path = self._last_checkpoint()
            if path is None:
                if subcommand != "fit":
                    dirs = ", ".join(str(cb.dirpath) for cb in self.trainer.checkpoint_callbacks) or "(none)"
                    raise CheckpointError(f"--ckpt_path last: no last.ckpt in {dirs}; train first or give a file")
                return  # fit starts from scratch (Lightning warns), which is what a re-queued job wants
            self._check_same_experiment(path, data=subcommand == "fit")
            cfg["ckpt_path"] = str(path)
        elif ckpt and ckpt not in ("best", "hpc", "registry") and "://" not in str(ckpt):
            verify_checkpoint(ckpt)
        elif not ckpt and subcommand in ("test", "predict") and not cfg.get("allow_untrained"):
            if any(p.requires_grad for p in self.model.parameters()) and not _has_init_weights(self.model):
                raise ConfigError(f"{subcommand} without --ckpt_path would evaluate untrained weights; pass "
                                  "--ckpt_path <file>|last, or --allow_untrained true")

    def _last_checkpoint(self) -> Path | None:
        found = [Path(cb.dirpath) / "last.ckpt" for cb in self.trainer.checkpoint_callbacks
                 if getattr(cb, "dirpath", None) and (Path(cb.dirpath) / "last.ckpt").is_file()]
        return max(found, key=lambda p: p.stat().st_mtime) if found else None

    def _check_same_experiment(self, path: Path, data: bool) -> None:
        """Refuse ``path`` if it was written with another model (or, when resuming, data) config."""
        verify_checkpoint(path)
        ckpt = load_torch(path, trust=bool(self.config_init[self.subcommand].get("trust_checkpoint")))
        now = self._run_config()
        saved = ckpt.get(CONFIG_KEY)
        if saved is None:  # written before run configs were stored: compare the task's hyperparameters
            hp = dict(ckpt.get("hyper_parameters") or {})
            hp.pop("_instantiator", None)
            cls = hp.pop("_class_path", None)
            if cls is None:
                return
            saved = {"model": {"class_path": cls, "init_args": hp}}
            now = {"model": {"class_path": now["model"].get("class_path"),
                             "init_args": {**(now["model"].get("init_args") or {}),
                                           **(now["model"].get("dict_kwargs") or {})}}}
        keys = ("model", "data") if data else ("model",)
        diff = _config_diff({k: saved.get(k) for k in keys}, {k: now.get(k) for k in keys})
        if diff:
            shown = "; ".join(diff[:4]) + (f"; and {len(diff) - 4} more" if len(diff) > 4 else "")
            raise CheckpointError(f"--ckpt_path last: {path} belongs to another experiment ({shown}); use another "
                                  "--trainer.default_root_dir, or give the checkpoint's path to use it anyway")


#: config keys that may differ between a run and the run it resumes (they do not change the result)
_RESUME_IGNORED = ("num_workers", "pin_memory")


def default_run_dir(configs: Any, task_name: str) -> str:
    """``runs/<folder>/<name>`` of the first ``--config`` file (``configs/motion/md17_aspirin.yaml`` ->
    ``runs/motion/md17_aspirin``), or ``runs/<TaskClass>`` without a config file: one folder per config."""
    first = next(iter(configs or []), None)
    if first is None:
        return os.path.join("runs", task_name)
    p = Path(str(getattr(first, "absolute", None) or getattr(first, "relative", None) or first)).absolute()
    return os.path.join("runs", p.parent.name, p.stem) if p.parent.name else os.path.join("runs", p.stem)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: d}


def _config_diff(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``key: saved -> now`` for every leaf that differs (keys in :data:`_RESUME_IGNORED` excepted)."""
    a, b = _flatten(saved), _flatten(now)
    out = []
    for k in sorted(set(a) | set(b)):
        if k.rsplit(".", 1)[-1] in _RESUME_IGNORED:
            continue
        va, vb = a.get(k), b.get(k)
        if va != vb and not (isinstance(va, list | tuple) and isinstance(vb, list | tuple) and list(va) == list(vb)):
            out.append(f"{k}: {va!r} -> {vb!r}")
    return out


def _check_task_class(ckpt_path: str, saved: str | None, model_cfg: Any) -> None:
    given = model_cfg.get("class_path") if hasattr(model_cfg, "get") else None
    if saved and given and saved != given:
        raise CheckpointError(f"{ckpt_path} holds a {saved.rsplit('.', 1)[-1]} ({saved}), but the config's model is "
                              f"{given.rsplit('.', 1)[-1]} ({given})")


def _family(cls: type, kind: str) -> str | None:
    parts = cls.__module__.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["visionkit", kind] else None


def _check_families(model: Any, datamodule: Any) -> None:
    """Refuse a task whose declared batch keys the datamodule does not yield, or a built-in task of one family
    with a built-in datamodule of another (``required_batch_keys`` / ``batch_keys`` declared by the classes)."""
    if model is None or datamodule is None:
        return
    need = set(getattr(model, "required_batch_keys", None) or ())
    have = getattr(datamodule, "batch_keys", None)
    t, d = type(model).__name__, type(datamodule).__name__
    if need and have is not None:
        missing = sorted(need - set(have))
        if missing:
            raise ConfigError(f"model {t} needs batch keys {missing} that data {d} does not yield "
                              f"(it yields {sorted(have)})")
        return
    ft, fd = _family(type(model), "tasks"), _family(type(datamodule), "datamodules")
    if ft and fd and ft != fd:
        raise ConfigError(f"model {t} is a {ft} task but data {d} is a {fd} datamodule; pick a {ft} datamodule "
                          f"(python -m visionkit list)")


def _has_init_weights(model: Any) -> bool:
    hp = getattr(model, "hparams", {}) or {}
    return bool(hp.get("init_weights") or hp.get("pretrained"))


def _check_writable(folder: str | os.PathLike, what: str) -> None:
    """Create ``folder`` and a file in it, or raise a one-line error naming it (before any work is done)."""
    p = Path(folder)
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".write_test"):
            pass
    except OSError as err:
        raise ConfigError(f"{what} {p} is not writable ({err.strerror or err})") from None


def _check_fresh(folder: Path, clear: bool) -> None:
    """Refuse to predict into a folder holding an earlier run's files, or empty it when ``clear``."""
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    if not clear:
        n = sum(1 for _ in folder.iterdir())
        raise ConfigError(f"prediction folder {folder} already holds {n} entries from an earlier run; remove them, "
                          "choose another output_dir, or pass --clear_predictions true")
    resolved = folder.resolve()
    if resolved in (Path.cwd().resolve(), Path.home().resolve(), Path(resolved.anchor)):
        raise ConfigError(f"--clear_predictions: refusing to empty {resolved}")
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _one_line(err: BaseException) -> str:
    """The last informative line of an error message (worker errors carry the remote traceback)."""
    text = str(err).strip()
    if isinstance(err, KeyError) and len(err.args) == 1:
        text = f"missing key {err.args[0]!r}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return type(err).__name__
    if "Original Traceback" in text or "Traceback (most recent call last)" in text:
        last = lines[-1]
        return re.sub(r"^[\w.]*(Error|Exception): ", "", last) or last
    return " ".join(lines) if len(lines) <= 2 else lines[0]


def _argv_value(argv: list[str], flag: str) -> str | None:
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _type_name(text: str) -> str:
    """``<class 'int'>`` -> ``int``, ``<class 'NoneType'>`` -> ``None``."""
    name = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", text.strip())
    literal = re.fullmatch(r"(?:typing\.)?Literal\[(.*)\]", name)
    if literal:
        return f"one of {literal.group(1)}"
    return "None" if name == "NoneType" else name


def _condense_parser_error(text: str, config: str | None = None) -> str:
    """Reduce jsonargparse's nested report to one line that keeps what the parser knew: the full key, the
    expected type and the given value, the YAML file with line and column, or the unknown ``class_path``."""
    if text.startswith("Problems parsing config"):
        pairs = re.findall(r'([^\n]+)\n\s*in "[^"]*", line (\d+), column (\d+)', text.split(":", 1)[1])
        if pairs:
            problem, line, col = pairs[-1]
            context = (f" ({pairs[0][0].strip()} started at line {pairs[0][1]}, column {pairs[0][2]})"
                       if len(pairs) > 1 else "")
            where = f"{config}: " if config else ""
            return f"{where}line {line}, column {col}: YAML syntax: {problem.strip()}{context}"
    # the full key: outer "Parser key" names, joined through init_args when a class_path sits between
    keys, pos = [], 0
    for m in re.finditer(r'Parser key "([^"]+)"|class_path \'([^\']+)\'', text):
        if m.group(1):
            keys.append(m.group(1))
        elif keys and keys[-1] != "init_args":
            keys.append("init_args")
        pos = m.end()
    if keys and keys[-1] == "init_args":
        keys.pop()
    prefix = f"{'.'.join(keys)}: " if keys else ""
    inner = text[pos:] if keys else text
    for pattern in (r"(Option '[^']+' is not accepted)", r"(Key \S+ is not expected)",
                    r"([Uu]nrecognized arguments: [^\n]+)", r"(No action for key \S+[^\n]*)"):
        m = re.search(pattern, inner) or re.search(pattern, text)
        if m:
            bad = re.search(r"class_path '([^']+)'", text)
            where = f" (in {bad.group(1)})" if bad and "class_path" not in m.group(1) else ""
            return f"{prefix}{m.group(1)}{where}"
    got = re.search(r"Expected an? (.+?)\. Got value: ([^\n]*)", inner)
    if got:
        return f"{prefix}expected {_type_name(got.group(1))}, got {got.group(2).strip()!r}"
    cls_problem = re.search(r"Problem with given class_path '([^']+)':\s*\n\s*([^\n]+)", text)
    unknown = re.search(r"Expected a path but (\S+) either not accessible or invalid", text) or re.search(
        r"Import path (\S+) does not", text)
    if unknown or (cls_problem and re.search(r"has no attribute|No module named|does not exist", cls_problem.group(2))):
        from visionkit.plugins import registered_datamodules, registered_tasks

        name = unknown.group(1) if unknown else cls_problem.group(1)
        why = f" ({cls_problem.group(2).strip()})" if cls_problem and not unknown else ""
        kind = registered_datamodules() if prefix.startswith("data") else registered_tasks()
        names = ", ".join(c.__name__ for c in kind)
        return f"{prefix}unknown class {name!r}{why}; known: {names} (or a full import path)"
    if cls_problem:
        return f"{prefix}{cls_problem.group(2).strip()} (in {cls_problem.group(1)})"
    union = re.search(r"Subtypes: \[([^\]]*)\]", text)
    given = re.search(r"Given value: ([^\n]*)", text)
    if union and given:
        types = [_type_name(t) for t in union.group(1).split(",")]
        return f"{prefix}expected {' or '.join(types)}, got {given.group(1).strip()!r}"
    first = [ln.strip() for ln in inner.splitlines() if ln.strip()]
    return prefix + (first[0] if first else text.strip().splitlines()[0])


#: datamodule attributes that the task takes under the same name (the data knows them; configs need not repeat)
LINKED_ARGUMENTS = ("num_classes", "class_names", "past_len", "future_len", "num_categories", "parts_per_category")


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, list | tuple) else value


def link_data_to_model(data: Any, model: Any) -> None:
    """Carry :data:`LINKED_ARGUMENTS` from the configured datamodule into the task's ``init_args``.

    The datamodule is built once from its config (constructors only store their arguments; data is read in
    ``setup``). A task argument still at its signature default takes the datamodule's value; one set to a
    different value than the datamodule's is a :class:`ConfigError` naming both.
    """
    import inspect

    from jsonargparse import Namespace
    from jsonargparse._util import import_object

    try:
        data_cls, model_cls = import_object(data["class_path"]), import_object(model["class_path"])
    except Exception:  # the parser names unknown classes
        return
    init = data.get("init_args")
    try:
        dm = data_cls(**(init.as_dict() if isinstance(init, Namespace) else dict(init or {})))
    except VisionKitError:
        raise
    except Exception as err:  # the datamodule's own error, before the task could fail on a missing link
        if os.environ.get("VISIONKIT_TRACEBACK"):
            raise
        raise ConfigError(f"data ({data_cls.__name__}): {type(err).__name__}: {_one_line(err)}") from err
    margs = model.get("init_args")
    if margs is None:
        return
    params = {}
    for klass in model_cls.__mro__:  # the task's own parameters and those it forwards through **kwargs
        if "__init__" in vars(klass):
            for name, p in inspect.signature(klass.__init__).parameters.items():
                params.setdefault(name, p)
    for key in LINKED_ARGUMENTS:
        value = getattr(dm, key, None)
        if value is None or key not in params or key not in margs:
            continue
        current, default = _plain(margs[key]), _plain(params[key].default)
        if current == _plain(value):
            continue
        if current != default:
            raise ConfigError(f"model.init_args.{key}: {current!r}, but the datamodule ({data_cls.__name__}) gives "
                              f"{_plain(value)!r}; leave the key out (it comes from the data) or make them agree")
        margs[key] = value


def release_process_group() -> None:
    """Destroy the default process group a DDP run leaves initialised, on every process at the same point.

    Left to interpreter shutdown, the gloo threads of a CPU process group can abort the process
    (``terminate called without an active exception``) after the work is done.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main(args: list[str] | None = None) -> Any:
    """Entry point of ``python -m visionkit`` and the ``visionkit`` console script.

    Imports the built-in families and the plugins, then runs LightningCLI. ``visionkit list`` prints the
    registered tasks, datamodules and backbones; ``visionkit check-data --config ...`` reads every record of
    the config's datamodule once and lists all problems. Errors caused by user input (a bad config value, a
    missing dataset, a malformed file, a corrupt or foreign checkpoint, a non-finite loss) are printed as one
    line naming the culprit, exit status 2. Set ``VISIONKIT_TRACEBACK=1`` to get the traceback instead.
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
        if argv[:1] == ["check-data"]:
            from visionkit.check_data import check_data

            return check_data(argv[1:])
        # a checkpoint is read while the config is parsed (hyperparameters), so check it first
        ckpt = _argv_value(argv, "--ckpt_path")
        if ckpt and ckpt not in ("last", "best", "hpc", "null", "None") and "://" not in ckpt:
            verify_checkpoint(ckpt)
        cli = VisionKitCLI(args=args, parser_kwargs={"exit_on_error": False, "allow_abbrev": False})
        release_process_group()
        return cli
    except ArgumentError as err:
        _fail(f"{_condense_parser_error(str(err), _argv_value(argv, '--config'))} (--help lists the options)")
    except VisionKitError as err:
        _fail(_one_line(err))
    except FileNotFoundError as err:
        _fail(f"{err.filename or ''} {err.strerror or err}".strip())
    except Exception as err:
        if "DataLoader worker" not in str(err) or os.environ.get("VISIONKIT_TRACEBACK"):
            raise
        # an error inside a data-loader worker arrives with the worker's traceback in its message
        _fail(f"data-loader worker: {type(err).__name__}: {_one_line(err)}")


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2) from None


__all__ = ["VisionKitCLI", "main"]
