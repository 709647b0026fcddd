"""Benchmark PointOBB's rotated RoI sampling, dense-to-sparse matching and other-point masks against loops.

    python tools/bench_pointobb.py [--boxes 4000] [--points 400] [--threads 1]

Prints the time of the vectorised implementation, of a straightforward loop over boxes / points doing the same
computation, their ratio, and the largest difference between the two results.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

from visionkit.ops.rotated_boxes import points_in_obb
from visionkit.tasks.obb.coders import UCRCoder
from visionkit.tasks.obb.pointobb import PointOBB, rotated_roi_grid


def _time(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boxes", type=int, default=4000)
    ap.add_argument("--points", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = PointOBB(num_classes=3, coder=UCRCoder(3), backbone_kwargs={"widths": [16, 32, 64, 128],
                                                                         "out_indices": [1, 2, 3]},
                     fpn_channels=64, roi_size=5, finest_scale=16.0).eval()
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
        t_vec, a = _time(lambda: model.roi_features(feats, boxes, bidx, (H, W)))
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
        t_vec, (_, enc, _) = _time(lambda: model.dense_to_sparse(amaps, pts, pidx, (H, W)))
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
