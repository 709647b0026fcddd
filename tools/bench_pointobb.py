"""Benchmark PointOBB: vectorised parts against loops, and training steps at real size (time and peak memory).

    python tools/bench_pointobb.py [--boxes 4000] [--points 400] [--threads 1]

prints the time of the vectorised implementation, of a straightforward loop over boxes / points doing the same
computation, their ratio, and the largest difference between the two results.

    flock /tmp/bigmem.lock python tools/bench_pointobb.py steps --config configs/obb/pointobb_dota_v1.yaml \
        --num-points 0 300 1000 [--steps 2] [--roi-chunk 2048] [--size 1024] [--threads 1]

writes fake DOTA data in the exact on-disk format (``images/*.png``, ``labelTxt/*.txt``, ``points/*.txt``) with
``size x size`` patches and the given number of annotated points per patch, and runs training steps of the
config's model at its batch size on the CPU, one process per point count: seconds per step (after the first;
wall clock and the process's CPU time, which is what counts on a shared machine) and the process's peak resident
memory (``getrusage``). The worst case of the random views is forced: the
resized view at the largest scale of ``view_scale_range`` and the rotated view with the symmetry loss on.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from visionkit.ops.rotated_boxes import points_in_obb
from visionkit.tasks.obb.coders import UCRCoder
from visionkit.tasks.obb.pointobb import PointOBB, PointOBBConfig, rotated_roi_grid


def _time(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def write_fake_dota(root: Path, num_images: int, size: int, num_points: int, seed: int = 0) -> None:
    """``root/train/{images,labelTxt,points}``: ``num_images`` noise patches with ``num_points`` small objects
    (vehicle-sized boxes, DOTA v1.0 classes) each, in the DOTA formats."""
    from PIL import Image

    from visionkit.datamodules.obb.dota import DOTA_V1_0_CLASSES, write_dota_txt, write_point_txt
    from visionkit.ops.rotated_boxes import obb2poly

    g = torch.Generator().manual_seed(seed)
    base = root / "train"
    for sub in ("images", "labelTxt", "points"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for i in range(num_images):
        img = (torch.rand(size, size, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(img).save(base / "images" / f"P{i:04d}.png")
        n = num_points
        boxes = torch.cat([8 + torch.rand(n, 2, generator=g, dtype=torch.float64) * (size - 16),
                           torch.stack([8 + torch.rand(n, generator=g, dtype=torch.float64) * 40,
                                        4 + torch.rand(n, generator=g, dtype=torch.float64) * 12], 1),
                           (torch.rand(n, 1, generator=g, dtype=torch.float64) - 0.5) * math.pi], 1)
        labels = torch.randint(0, len(DOTA_V1_0_CLASSES), (n,), generator=g).tolist()
        names = [DOTA_V1_0_CLASSES[k] for k in labels]
        write_dota_txt(base / "labelTxt" / f"P{i:04d}.txt", obb2poly(boxes).numpy(), names, [0] * n,
                       {"imagesource": "GoogleEarth", "gsd": None})
        write_point_txt(base / "points" / f"P{i:04d}.txt", boxes[:, :2].numpy(), names)


def _progress(what: str, t0: float, c0: float) -> None:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(f"    {what} done: {time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU, "
          f"peak RSS so far {peak:.2f} GB", flush=True)


def run_steps(config: Path, root: Path, steps: int, roi_chunk: int | None) -> dict[str, float]:
    """Training steps of the config's PointOBB model on ``root``; returns seconds per step and peak RSS (GB)."""
    import resource

    import yaml

    from visionkit.datamodules.obb.points import DOTAPoints
    from visionkit.tasks.obb.pointobb import PointOBBTask

    cfg = yaml.safe_load(config.read_text())
    margs = dict(cfg["model"]["init_args"])
    if roi_chunk is not None:
        margs["pointobb"] = {**(margs.get("pointobb") or {}), "roi_chunk": roi_chunk}
    hi = max(margs.get("view_scale_range", (0.5, 1.5)))
    margs.update(view_scale_range=(hi, hi), rotate_prob=1.0)  # the largest views: the memory's worst case
    dargs = dict(cfg["data"]["init_args"], root=str(root), num_workers=0, pin_memory=False)
    dm = DOTAPoints(**dargs)
    for key in ("num_classes", "class_names"):  # linked from the data by the CLI when the config leaves them out
        margs.setdefault(key, getattr(dm, key))
    task = PointOBBTask(**margs)
    task._update_progress = lambda: None
    task.progress.fill_(max(margs.get("angle_proposal_start", 0.6), margs.get("angle_loss_start", 0.25)))
    dm.train_dataset = dm.make_dataset("train")
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)  # uint8 images -> float, as on device
    opt = torch.optim.SGD(task.parameters(), lr=1e-4, momentum=0.9)
    times, cpu = [], []
    for step in range(steps):
        torch.manual_seed(step)
        t, c = time.perf_counter(), time.process_time()
        losses = task.batch_losses(batch)
        _progress(f"step {step}: forward", t, c)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        _progress(f"step {step}: backward + update", t, c)
        if not all(bool(torch.isfinite(v.detach())) for v in losses.values()):
            raise RuntimeError(f"non-finite losses at step {step}: {losses}")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    per_step = sum(times[1:]) / (len(times) - 1) if len(times) > 1 else times[0]
    cpu_step = sum(cpu[1:]) / (len(cpu) - 1) if len(cpu) > 1 else cpu[0]
    return {"points": float(sum(len(p) for p in batch["points"])), "s_per_step": per_step, "cpu_s_per_step": cpu_step,
            "first_step_s": times[0], "peak_gb": peak_kb / 1024 ** 2, "batch": float(len(batch["points"]))}


def steps_main(argv: list[str]) -> None:
    import json
    import subprocess
    import sys
    import tempfile

    ap = argparse.ArgumentParser(description="PointOBB training steps at real size: seconds per step, peak memory")
    ap.add_argument("--config", type=Path, default=Path("configs/obb/pointobb_dota_v1.yaml"))
    ap.add_argument("--num-points", type=int, nargs="+", default=[0, 300, 1000], help="annotated points per patch")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--size", type=int, default=1024, help="patch side, pixels")
    ap.add_argument("--roi-chunk", type=int, default=None, help="override the model's roi_chunk (0: no chunks)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child is not None:  # one measurement in a fresh process: its peak RSS is its own
        print(json.dumps(run_steps(args.config, args.child, args.steps, args.roi_chunk)), flush=True)
        return
    import yaml

    batch = int(yaml.safe_load(args.config.read_text())["data"]["init_args"].get("batch_size", 2))
    print(f"threads={args.threads}  {args.config}  batch {batch} of {args.size}x{args.size} patches, "
          f"{args.steps} steps, roi_chunk={'config' if args.roi_chunk is None else args.roi_chunk}")
    print(f"{'points/patch':>12} {'s/step':>9} {'CPU s/step':>11} {'1st step s':>11} {'peak RSS GB':>12}")
    for n in args.num_points:
        with tempfile.TemporaryDirectory() as tmp:
            write_fake_dota(Path(tmp), batch, args.size, n)
            cmd = [sys.executable, __file__, "steps", "--config", str(args.config), "--steps", str(args.steps),
                   "--threads", str(args.threads), "--child", tmp]
            if args.roi_chunk is not None:
                cmd += ["--roi-chunk", str(args.roi_chunk)]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
            last = ""
            for line in proc.stdout:  # progress lines as the steps go, then one JSON line
                if line.startswith("{"):
                    last = line
                else:
                    print(line.rstrip(), flush=True)
            err = proc.stderr.read().strip().splitlines()
            if proc.wait() != 0 or not last:
                print(f"{n:>12} failed: {err[-1] if err else proc.returncode}")
                continue
            r = json.loads(last)
            print(f"{n:>12} {r['s_per_step']:9.1f} {r['cpu_s_per_step']:11.1f} {r['first_step_s']:11.1f} "
                  f"{r['peak_gb']:12.2f}", flush=True)


def main() -> None:
    import sys

    if len(sys.argv) > 1 and sys.argv[1] == "steps":
        steps_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boxes", type=int, default=4000)
    ap.add_argument("--points", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = PointOBBConfig(backbone_kwargs={"widths": [16, 32, 64, 128], "out_indices": [1, 2, 3]}, fpn_channels=64,
                         roi_size=5, finest_scale=16.0)
    model = PointOBB(3, UCRCoder(3), net).eval()
    B, H, W = 8, 128, 128
    with torch.no_grad():
        feats = model.features(torch.rand(B, 3, H, W))
        amaps = model.angle_maps(feats)
    n = args.boxes
    boxes = torch.cat([torch.rand(n, 2) * 128, 6 + torch.rand(n, 2) * 50, (torch.rand(n, 1) - 0.5) * math.pi], 1)
    bidx = torch.randint(0, B, (n,))

    def loop_roi():
        out = []
        lvl = model.level_of(boxes[:, 2:4])
        for k in range(n):  # one grid_sample per box: the baseline
            f = feats[int(lvl[k])][int(bidx[k])][None]
            s = model.strides[int(lvl[k])]
            p = rotated_roi_grid(boxes[k:k + 1], model.roi_size)[0]
            g = torch.stack([p[:, 0] * 2 / (f.shape[-1] * s) - 1, p[:, 1] * 2 / (f.shape[-2] * s) - 1], -1)
            out.append(F.grid_sample(f, g[None, None], align_corners=False)[0, :, 0].flatten())
        return torch.stack(out)

    with torch.no_grad():
        t_vec, a = _time(lambda: model.roi_features(feats, boxes, bidx))
        t_loop, b = _time(loop_roi, repeat=1)
    print(f"threads={args.threads}  rotated RoI features, {n} boxes, S={model.roi_size}, C=64, batch {B}x{H}x{W}")
    print(f"  vectorised {t_vec * 1e3:8.1f} ms   per-box loop {t_loop * 1e3:8.1f} ms   ratio {t_loop / t_vec:6.1f}x"
          f"   max |diff| {float((a - b).abs().max()):.2e}")

    m = args.points
    pts = torch.rand(m, 2) * 128
    pidx = torch.randint(0, B, (m,))

    def loop_d2s():
        out = torch.zeros(m, len(amaps), 3)
        for i in range(m):  # all cells of every level, distance test per point: the baseline
            for lvl, a_l in enumerate(amaps):
                s = model.strides[lvl]
                h, w = a_l.shape[-2:]
                ys = (torch.arange(h) + 0.5) * s
                xs = (torch.arange(w) + 0.5) * s
                d = torch.hypot(xs[None] - pts[i, 0], ys[:, None] - pts[i, 1])
                mask = d <= model.d2s_radius * s
                out[i, lvl] = a_l[int(pidx[i])][:, mask].mean(1)
        return out

    with torch.no_grad():
        t_vec, (_, enc, _) = _time(lambda: model.dense_to_sparse(amaps, pts, pidx))
        t_loop, ref = _time(loop_d2s, repeat=1)
    print(f"threads={args.threads}  dense-to-sparse matching, {m} points, {len(amaps)} levels")
    print(f"  vectorised {t_vec * 1e3:8.1f} ms   per-point loop {t_loop * 1e3:8.1f} ms   ratio {t_loop / t_vec:6.1f}x"
          f"   max |diff| {float((enc - ref).abs().max()):.2e}")

    # proposals covering another point of their image (exclude_other_points): all bags at once vs bag by bag
    model.exclude_other_points = True
    n_img = max(1, m // 25)  # about 25 points per image, as in a batch of crowded images
    bidx = torch.arange(m) % n_img
    bags = model.stage0_bags(pts, None, torch.zeros(m, dtype=torch.long))

    def loop_keep():
        keep = torch.ones(bags.shape[:2], dtype=torch.bool)
        for i in range(m):
            others = pts[(bidx == bidx[i]) & (torch.arange(m) != i)]
            if len(others):
                keep[i] = ~points_in_obb(others, bags[i]).any(0)
        return keep | ~keep.any(1, keepdim=True)

    with torch.no_grad():
        t_vec, keep = _time(lambda: model.free_of_other_points(bags, pts, bidx))
        t_loop, ref = _time(loop_keep, repeat=1)
    print(f"threads={args.threads}  proposals covering another point, {m} bags x {bags.shape[1]} proposals, "
          f"{n_img} images")
    print(f"  vectorised {t_vec * 1e3:8.1f} ms   per-bag loop {t_loop * 1e3:8.1f} ms   ratio {t_loop / t_vec:6.1f}x"
          f"   identical {bool(torch.equal(keep, ref))}")


if __name__ == "__main__":
    main()
