"""Benchmark visionkit's rotated-box ops against shapely 2 and torchvision's compiled rotated IoU.

Prints, for each torch thread count, the pairwise IoU of N x N random DOTA-like boxes (centres uniform in a
1024 image, sides log-uniform in [8, 120] px, any angle, float32) and greedy NMS on K boxes, with ratios to the
baselines measured in the same run:

- shapely 2: ``shapely.intersection`` / ``shapely.area`` on arrays of polygons (single-threaded; measured on a
  block of rows and scaled to the full matrix);
- torchvision: ``torchvision.ops.box_iou(..., fmt='cxcywhr')`` (its compiled ``box_iou_rotated``) through
  :func:`visionkit.ops.rotated_boxes.obb_to_torchvision`, and a greedy NMS built on it (one IoU row per kept box).

Usage: ``python tools/bench_rotated_ops.py [--n 2000] [--nms 10000] [--threads 1 2] [--out docs/benchmarks/obb_ops.md]``
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time

import numpy as np
import shapely
import torch
import torchvision

from visionkit.ops.rotated_boxes import box_iou_rotated, nms_rotated, obb2corners, obb_to_torchvision


def dota_like(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = torch.rand(n, 2, generator=g) * 1024
    wh = torch.exp(torch.rand(n, 2, generator=g) * math.log(120 / 8)) * 8
    t = (torch.rand(n, 1, generator=g) - 0.5) * math.pi
    return torch.cat([c, wh, t], 1)


def best_of(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def shapely_pairwise_time(b1: torch.Tensor, b2: torch.Tensor, rows: int) -> tuple[float, float]:
    """Seconds for the full matrix (scaled from ``rows`` rows) and the max |ours - shapely| on those rows."""
    p1 = shapely.polygons(obb2corners(b1[:rows].double()).numpy())
    p2 = shapely.polygons(obb2corners(b2.double()).numpy())

    def run():
        inter = shapely.area(shapely.intersection(p1[:, None], p2[None, :]))
        a1, a2 = shapely.area(p1)[:, None], shapely.area(p2)[None, :]
        return inter / (a1 + a2 - inter)

    t0 = time.perf_counter()
    ref = run()
    dt = time.perf_counter() - t0
    err = float(np.abs(box_iou_rotated(b1[:rows], b2).numpy() - ref).max())
    return dt * b1.shape[0] / rows, err


def tv_greedy_nms(boxes: torch.Tensor, scores: torch.Tensor, thr: float) -> torch.Tensor:
    """Greedy NMS on torchvision's compiled rotated IoU: one IoU row per kept box."""
    tvb = obb_to_torchvision(boxes)
    order = torch.sort(scores, descending=True, stable=True).indices
    tvb = tvb[order]
    alive = torch.ones(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if not alive[i]:
            continue
        keep.append(i)
        rest = torch.arange(i + 1, len(order))[alive[i + 1:]]
        if rest.numel():
            iou = torchvision.ops.box_iou(tvb[i:i + 1], tvb[rest], fmt="cxcywhr")[0]
            alive[rest[iou > thr]] = False
    return order[torch.tensor(keep, dtype=torch.long)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="boxes per side of the pairwise IoU")
    ap.add_argument("--nms", type=int, default=10000, help="boxes for NMS")
    ap.add_argument("--nms-thr", type=float, default=0.1)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--shapely-rows", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None, help="write a markdown table here")
    args = ap.parse_args(argv)

    b1, b2 = dota_like(args.n, 0), dota_like(args.n, 1)
    nb, ns = dota_like(args.nms, 2), torch.rand(args.nms, generator=torch.Generator().manual_seed(3))
    tv1, tv2 = obb_to_torchvision(b1), obb_to_torchvision(b2)
    pairs = args.n * args.n
    ours_iou = box_iou_rotated(b1, b2)
    tv_iou = torchvision.ops.box_iou(tv1, tv2, fmt="cxcywhr")
    overlap = float((ours_iou > 0).float().mean())
    tv_err = float((ours_iou - tv_iou).abs().max())
    torch.set_num_threads(1)
    t_shp, shp_err = shapely_pairwise_time(b1, b2, min(args.shapely_rows, args.n))
    ours_keep = nms_rotated(nb, ns, args.nms_thr)
    tv_keep = tv_greedy_nms(nb, ns, args.nms_thr)
    same = ours_keep.tolist() == tv_keep.tolist()

    lines = [
        f"# torch {torch.__version__}, torchvision {torchvision.__version__}, shapely {shapely.__version__}, "
        f"python {platform.python_version()}, {platform.processor() or platform.machine()}",
        f"# pairwise IoU: {args.n} x {args.n} = {pairs / 1e6:.1f}M pairs, {overlap:.2%} with IoU > 0; "
        f"max |ours - shapely| = {shp_err:.1e} (float32 inputs), max |ours - torchvision| = {tv_err:.1e}",
        f"# NMS: {args.nms} boxes, iou > {args.nms_thr}: ours keeps {len(ours_keep)}, torchvision-greedy keeps "
        f"{len(tv_keep)}, identical kept lists: {same}",
        "",
        "| threads | op | ours (s) | shapely 2 (s) | torchvision (s) | shapely / ours | torchvision / ours |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for th in args.threads:
        torch.set_num_threads(th)
        t_ours = best_of(lambda: box_iou_rotated(b1, b2), args.repeats)
        t_tv = best_of(lambda: torchvision.ops.box_iou(tv1, tv2, fmt="cxcywhr"), args.repeats)
        lines.append(f"| {th} | IoU {args.n}x{args.n} | {t_ours:.4f} | {t_shp:.3f} (1 thread) | {t_tv:.4f} | "
                     f"{t_shp / t_ours:.1f}x | {t_tv / t_ours:.1f}x |")
        n_ours = best_of(lambda: nms_rotated(nb, ns, args.nms_thr), args.repeats)
        n_tv = best_of(lambda: tv_greedy_nms(nb, ns, args.nms_thr), 1)
        lines.append(f"| {th} | NMS {args.nms} | {n_ours:.4f} | - | {n_tv:.4f} | - | {n_tv / n_ours:.1f}x |")
        print("\n".join(lines[-2:]) if th != args.threads[0] else "\n".join(lines), flush=True)
    cmd = "python tools/bench_rotated_ops.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.out:
        with open(args.out, "w") as f:
            f.write("# Rotated-box ops benchmark\n\n")
            f.write(f"Command: `{cmd.strip()}` (2-core CPU shared with other jobs; compare ratios within one run).\n\n")
            f.write("Shapely is single-threaded and measured on a block of rows, scaled to the full matrix.\n\n")
            f.write("```\n" + "\n".join(lines[:3]) + "\n```\n\n" + "\n".join(lines[4:]) + "\n")


if __name__ == "__main__":
    main()
