"""Generation speed: raster vs neighboring (NAR) decoding on the same transformer, measured in one run.

For each grid size and batch size it prints the forward passes per image and images/s for both orderings and
the NAR / raster speed ratio. Both models have the same width, depth and heads (NAR adds its vertical head's
extra block); weights are random, which does not change the cost. The two orderings are timed alternately,
call after call, so that both see the same load of a shared machine; each rate is the median over the calls.

    python tools/bench_generation.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from visionkit.tasks.generation.ordering import Ordering
from visionkit.tasks.generation.transformer import ARTransformer


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
    args = p.parse_args()
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
        for b in args.batches:
            rates = interleaved_rates(models, b, args.min_time, args.min_calls, args.cfg)
            med = {k: statistics.median(v) for k, v in rates.items()}
            cell = {k: f"{med[k]:.2f} [{min(v):.2f}-{max(v):.2f}]" for k, v in rates.items()}
            print(f"{n:>3}x{n:<2} {b:>5} | {models['raster'].num_passes():>13} {cell['raster']:>22} | "
                  f"{models['nar'].num_passes():>10} {cell['nar']:>22} | {med['nar'] / med['raster']:>9.2f}x | "
                  f"{len(rates['raster'])}/{len(rates['nar'])}", flush=True)


if __name__ == "__main__":
    main()
