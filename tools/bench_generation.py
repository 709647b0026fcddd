"""Generation speed: raster vs neighboring (NAR) decoding on the same transformer, measured in one run.

For each grid size and batch size it prints the forward passes per image and images/s for both orderings and
the NAR / raster speed ratio. Both models have the same width, depth and heads (NAR adds its vertical head's
extra block); weights are random, which does not change the cost. The two orderings are timed alternately,
call after call, so that both see the same load of a shared machine; each rate is the median over the calls.

    python tools/bench_generation.py --threads 1

``--baseline DIR`` also times the transformer of another checkout (``DIR/tasks/generation/transformer.py``,
e.g. a ``git worktree add DIR <commit>``) in the same alternation, with the same weights, so that old and new
code are compared under the same load.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

import torch

from visionkit.tasks.generation.ordering import Ordering
from visionkit.tasks.generation.transformer import ARTransformer


def load_baseline(root: str) -> ModuleType:
    """The ``transformer`` module of the checkout at ``root``, imported under its own name."""
    path = Path(root) / "tasks" / "generation" / "transformer.py"
    if not path.is_file():
        raise SystemExit(f"--baseline: {path} does not exist (expected the root of a visionkit checkout)")
    spec = importlib.util.spec_from_file_location("baseline_transformer", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve their module by name
    spec.loader.exec_module(mod)
    return mod


def interleaved_rates(models: dict[str, ARTransformer], batch: int, min_time: float, min_calls: int,
                      cfg_scale: float) -> dict[str, list[float]]:
    """Images/s of every call, the models taking turns until each ran ``min_calls`` and ``min_time`` total."""
    labels = torch.arange(batch) % 10
    gen = torch.Generator().manual_seed(0)
    for m in models.values():
        m.generate(labels[: min(batch, 2)], cfg_scale=cfg_scale, generator=gen)  # warm-up (plans, allocator)
    rates: dict[str, list[float]] = {k: [] for k in models}
    spent = dict.fromkeys(models, 0.0)
    while min(len(r) for r in rates.values()) < min_calls or min(spent.values()) < min_time:
        for k, m in models.items():
            start = time.perf_counter()
            m.generate(labels, cfg_scale=cfg_scale, generator=gen)
            dt = time.perf_counter() - start
            spent[k] += dt
            rates[k].append(batch / dt)
    return rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sizes", type=int, nargs="+", default=[8, 16])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16, 200])
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--cfg", type=float, default=1.0, help="guidance scale (!= 1 doubles the batch)")
    p.add_argument("--min-time", type=float, default=2.0, help="seconds of timing per ordering and cell")
    p.add_argument("--min-calls", type=int, default=3, help="calls per ordering and cell (at least)")
    p.add_argument("--baseline", default=None, help="root of another checkout whose transformer is timed alongside")
    args = p.parse_args()
    base = load_baseline(args.baseline) if args.baseline else None
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"threads={torch.get_num_threads()} dim={args.dim} depth={args.depth} heads={args.heads} "
          f"vocab={args.vocab} cfg={args.cfg} torch={torch.__version__}; median images/s over the calls "
          f"(range in brackets), orderings timed alternately")
    print(f"{'grid':>6} {'batch':>5} | {'raster passes':>13} {'raster img/s':>22} | {'nar passes':>10} "
          f"{'nar img/s':>22} | {'nar/raster':>10} | calls")
    for n in args.sizes:
        models = {}
        for kind in ("raster", "nar"):
            torch.manual_seed(0)
            models[kind] = ARTransformer(Ordering((n, n), kind), args.vocab, 10, args.dim, args.depth,
                                         args.heads).eval()
            if base is not None:
                models[f"base_{kind}"] = base.ARTransformer(Ordering((n, n), kind), args.vocab, 10, args.dim,
                                                            args.depth, args.heads).eval()
                models[f"base_{kind}"].load_state_dict(models[kind].state_dict())
        for b in args.batches:
            rates = interleaved_rates(models, b, args.min_time, args.min_calls, args.cfg)
            med = {k: statistics.median(v) for k, v in rates.items()}
            cell = {k: f"{med[k]:.2f} [{min(v):.2f}-{max(v):.2f}]" for k, v in rates.items()}
            print(f"{n:>3}x{n:<2} {b:>5} | {models['raster'].num_passes():>13} {cell['raster']:>22} | "
                  f"{models['nar'].num_passes():>10} {cell['nar']:>22} | {med['nar'] / med['raster']:>9.2f}x | "
                  f"{len(rates['raster'])}/{len(rates['nar'])}", flush=True)
            if base is not None:
                print(f"{'':>6} {'':>5} | {'baseline':>13} {cell['base_raster']:>22} | {'':>10} "
                      f"{cell['base_nar']:>22} | {med['base_nar'] / med['base_raster']:>9.2f}x | new/baseline: "
                      f"raster {med['raster'] / med['base_raster']:.2f}x, nar {med['nar'] / med['base_nar']:.2f}x",
                      flush=True)

if __name__ == "__main__":
    main()
