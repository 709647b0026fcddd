"""Generation speed: raster vs neighboring (NAR) decoding on the same transformer, measured in one run.

For each grid size and batch size it prints the forward passes per image and images/s for both orderings and
the NAR / raster speed ratio. Both models have the same width, depth and heads (NAR adds its vertical head's
extra block); weights are random, which does not change the cost. Timings on a shared machine are noisy:
compare the ratios, which are measured back to back.

    python tools/bench_generation.py --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch

from visionkit.tasks.generation.ordering import Ordering
from visionkit.tasks.generation.transformer import ARTransformer


def images_per_second(model: ARTransformer, batch: int, min_time: float, cfg_scale: float) -> float:
    labels = torch.arange(batch) % model.num_classes
    gen = torch.Generator().manual_seed(0)
    model.generate(labels[: min(batch, 2)], cfg_scale=cfg_scale, generator=gen)  # warm-up
    n, start = 0, time.perf_counter()
    while True:
        model.generate(labels, cfg_scale=cfg_scale, generator=gen)
        n += batch
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return n / elapsed


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
    p.add_argument("--min-time", type=float, default=2.0, help="seconds of timing per cell (at least one call)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"threads={torch.get_num_threads()} dim={args.dim} depth={args.depth} heads={args.heads} "
          f"vocab={args.vocab} cfg={args.cfg} torch={torch.__version__}")
    print(f"{'grid':>6} {'batch':>5} | {'raster passes':>13} {'raster img/s':>12} | {'nar passes':>10} "
          f"{'nar img/s':>10} | {'nar/raster':>10}")
    for n in args.sizes:
        models = {}
        for kind in ("raster", "nar"):
            torch.manual_seed(0)
            models[kind] = ARTransformer(Ordering((n, n), kind), args.vocab, 10, args.dim, args.depth,
                                         args.heads).eval()
        for b in args.batches:
            r = images_per_second(models["raster"], b, args.min_time, args.cfg)
            q = images_per_second(models["nar"], b, args.min_time, args.cfg)
            print(f"{n:>3}x{n:<2} {b:>5} | {models['raster'].num_passes():>13} {r:>12.2f} | "
                  f"{models['nar'].num_passes():>10} {q:>10.2f} | {q / r:>9.2f}x", flush=True)


if __name__ == "__main__":
    main()
