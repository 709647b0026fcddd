"""``python -m visionkit check-data --config ...``: read every record of a config's data once, list all problems."""

from __future__ import annotations

import sys
from typing import Any

import torch


def _non_finite(value: Any, key: str) -> list[str]:
    """Names of the float tensors in ``value`` (a tensor, or a list/tuple of them) holding NaN or inf."""
    if torch.is_tensor(value):
        return [key] if value.is_floating_point() and not bool(torch.isfinite(value).all()) else []
    if isinstance(value, list | tuple):
        return [name for i, v in enumerate(value) for name in _non_finite(v, f"{key}[{i}]")]
    return []


def check_dataset(dataset: Any, split: str, progress: bool = True) -> tuple[int, list[str]]:
    """Read every record of ``dataset`` once; return the number read and one line per problem found.

    A problem is a record whose reading raises (the line keeps the reader's message, which names the file
    and line) or whose sample holds a float tensor with NaN or inf. An empty dataset is a problem too.
    """
    from tqdm import tqdm

    from visionkit.cli import _one_line

    n = len(dataset)
    if n == 0:
        return 0, [f"{split}: no records"]
    problems = []
    for i in tqdm(range(n), desc=f"check {split}", file=sys.stderr, disable=not progress, mininterval=0.5,
                  leave=False):
        try:
            sample = dataset[i]
        except Exception as err:  # every failure is reported, the scan goes on
            problems.append(f"{split} record {i}: {type(err).__name__}: {_one_line(err)}")
            continue
        items = sample.items() if isinstance(sample, dict) else enumerate(sample if isinstance(sample, list | tuple)
                                                                          else [sample])
        bad = [name for k, v in items for name in _non_finite(v, str(k))]
        if bad:
            problems.append(f"{split} record {i}: non-finite values in {', '.join(bad)}")
    return n, problems


def check_data(argv: list[str], progress: bool = True) -> int:
    """Build the datamodule of ``argv`` (``--config ...`` and overrides) and check every split.

    Prints one line per problem on stdout and a summary; raises ``SystemExit(2)`` (after an ``error:`` line on
    stderr) when any problem was found, returns 0 otherwise.
    """
    from visionkit.cli import VisionKitCLI, _one_line

    cli = VisionKitCLI(args=argv, run=False, parser_kwargs={"exit_on_error": False, "allow_abbrev": False})
    dm = cli.datamodule
    dm.trainer = cli.trainer
    problems: list[str] = []
    counts: dict[str, int] = {}
    for stage, splits in (("fit", ("train", "val")), ("test", ("test",)), ("predict", ("predict",))):
        try:
            dm.setup(stage)
        except Exception as err:
            line = f"{type(err).__name__}: {_one_line(err)}"
            if not any(p.endswith(line) for p in problems):  # test and predict often share one failing reader
                problems.append(f"setup({stage}): {line}")
            continue
        for split in splits:
            ds = getattr(dm, f"{split}_dataset", None)
            if ds is None or split in counts:
                continue
            counts[split], found = check_dataset(ds, split, progress)
            problems += found
    for line in problems:
        print(line)
    summary = ", ".join(f"{k} {v}" for k, v in counts.items()) or "no split"
    if problems:
        print(f"error: {len(problems)} problem(s) in the data of {type(dm).__name__} (records read: {summary})",
              file=sys.stderr)
        raise SystemExit(2)
    print(f"ok: {type(dm).__name__}, records read: {summary}")
    return 0
