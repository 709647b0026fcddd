"""Benchmark of the motion family: CPU time per EqMotion training step (particle config, batch 32).

Prints the parameter count, the time per optimiser step (forward + backward + AdamW) of the vectorised model,
the same work done one scene at a time (a loop over the batch: what vectorisation saves) and the
constant-velocity baseline's forward, all measured in this run with the thread count shown.

    python tools/bench_motion.py                     # 1 thread, batch 32, particle sizes
    python tools/bench_motion.py --curve runs/motion/particles/version_0/metrics.csv --out curve.png
"""

from __future__ import annotations

import argparse
import csv
import time

import torch

from visionkit.tasks.motion.baselines import ConstantVelocity
from visionkit.tasks.motion.eqmotion import EqMotion


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def bench(batch: int, agents: int, past: int, future: int, dim: int, repeats: int) -> None:
    torch.manual_seed(0)
    model = EqMotion(past, future, dim, channels=64, hidden=64, num_layers=4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, agents, past, dim).cumsum(2)
    y = torch.randn(batch, agents, future, dim).cumsum(2)
    mask = torch.ones(batch, agents, dtype=torch.bool)

    def step() -> None:
        opt.zero_grad()
        loss = (model(x, mask)["future"] - y).norm(dim=-1).mean()
        loss.backward()
        opt.step()

    def step_per_scene() -> None:
        opt.zero_grad()
        loss = sum((model(x[i:i + 1], mask[i:i + 1])["future"] - y[i:i + 1]).norm(dim=-1).mean()
                   for i in range(batch)) / batch
        loss.backward()
        opt.step()

    cv = ConstantVelocity(future)
    t_step = _time(step, repeats)
    t_loop = _time(step_per_scene, max(1, repeats // 4))
    with torch.no_grad():
        t_fwd = _time(lambda: model(x, mask), repeats)
        t_cv = _time(lambda: cv(x, mask), repeats)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"threads={torch.get_num_threads()} batch={batch} agents={agents} frames={past}->{future} dim={dim}")
    print(f"EqMotion parameters: {n_params:,}")
    print(f"train step (vectorised):        {t_step * 1e3:8.2f} ms   target <= 300 ms")
    print(f"train step (loop over scenes):  {t_loop * 1e3:8.2f} ms   ratio loop/vectorised = {t_loop / t_step:.1f}x")
    print(f"inference forward:              {t_fwd * 1e3:8.2f} ms")
    print(f"constant-velocity forward:      {t_cv * 1e3:8.3f} ms   ratio EqMotion/CV forward = {t_fwd / t_cv:.0f}x")


def plot_curve(csv_path: str, out: str) -> None:
    """Plot ``train_loss_epoch`` and ``val_ADE`` per epoch from a Lightning CSV log into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = {}, {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("train_loss_epoch"):
                train[int(row["epoch"])] = float(row["train_loss_epoch"])
            if row.get("val_ADE"):
                val[int(row["epoch"])] = float(row["val_ADE"])
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.plot(list(train), list(train.values()), label="train ADE (loss)")
    ax.plot(list(val), list(val.values()), label="val ADE")
    ax.set_xlabel("epoch")
    ax.set_ylabel("ADE")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}: {len(train)} train epochs, {len(val)} validations; last val ADE "
          f"{list(val.values())[-1]:.4f}" if val else f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--agents", type=int, default=5)
    ap.add_argument("--past", type=int, default=20)
    ap.add_argument("--future", type=int, default=20)
    ap.add_argument("--dim", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--curve", help="Lightning metrics.csv to plot instead of benchmarking")
    ap.add_argument("--out", default="motion_curve.png")
    args = ap.parse_args()
    if args.curve:
        plot_curve(args.curve, args.out)
        return
    torch.set_num_threads(args.threads)
    bench(args.batch, args.agents, args.past, args.future, args.dim, args.repeats)


if __name__ == "__main__":
    main()
