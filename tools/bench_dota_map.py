"""Benchmark DOTAMeanAP.compute against a per-detection loop in the DOTA devkit's style (numpy + shapely).

Both run in this process on the same random detections; the script prints their times, the ratio, the thread
count and the largest AP difference (it must be ~0).

    python tools/bench_dota_map.py --images 100 --dets 200 --gts 20 --classes 15
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from shapely.geometry import Polygon

from visionkit.tasks.obb.dota_map import DOTAMeanAP


def _poly(b: np.ndarray) -> Polygon:
    cx, cy, w, h, t = b
    c, s = math.cos(t), math.sin(t)
    v1, v2 = np.array([w / 2 * c, w / 2 * s]), np.array([-h / 2 * s, h / 2 * c])
    ctr = np.array([cx, cy])
    return Polygon([ctr + v1 + v2, ctr + v1 - v2, ctr - v1 - v2, ctr - v1 + v2])


def devkit_loop(preds, targets, num_classes: int, thr: float = 0.5) -> np.ndarray:
    """Per-class AP, one detection at a time (hbb prefilter, then polygon IoU), VOC07, IoU > thr."""
    aps = np.full(num_classes, np.nan)
    for c in range(num_classes):
        recs, npos = {}, 0
        for i, t in enumerate(targets):
            m = t["labels"].numpy() == c
            b = t["boxes"].numpy()[m]
            recs[i] = {"polys": [_poly(x) for x in b], "difficult": t["difficult"].numpy()[m],
                       "det": np.zeros(int(m.sum()), bool)}
            recs[i]["hbb"] = np.array([p.bounds for p in recs[i]["polys"]]).reshape(-1, 4)
            npos += int((~recs[i]["difficult"]).sum())
        dets = [(i, float(s), b) for i, p in enumerate(preds)
                for b, s, lab in zip(p["boxes"].numpy(), p["scores"].numpy(), p["labels"].numpy()) if lab == c]
        if npos == 0:
            continue
        order = np.argsort(-np.array([d[1] for d in dets]), kind="stable")
        tp, fp = np.zeros(len(dets)), np.zeros(len(dets))
        for d, k in enumerate(order):
            img, _, box = dets[k]
            R = recs[img]
            ovmax, jmax = -np.inf, -1
            if len(R["polys"]):
                pb = _poly(box)
                x0, y0, x1, y1 = pb.bounds
                h = R["hbb"]
                cand = np.nonzero((np.minimum(h[:, 2], x1) > np.maximum(h[:, 0], x0))
                                  & (np.minimum(h[:, 3], y1) > np.maximum(h[:, 1], y0)))[0]
                if cand.size:
                    ov = np.array([pb.intersection(R["polys"][j]).area
                                   / (pb.area + R["polys"][j].area - pb.intersection(R["polys"][j]).area)
                                   for j in cand])
                    ovmax, jmax = ov.max(), int(cand[ov.argmax()])
            if ovmax > thr:
                if not R["difficult"][jmax]:
                    if not R["det"][jmax]:
                        tp[d], R["det"][jmax] = 1, True
                    else:
                        fp[d] = 1
            else:
                fp[d] = 1
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        rec, prec = tp / npos, tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        aps[c] = sum((np.max(prec[rec >= t]) if np.any(rec >= t) else 0) for t in np.arange(0.0, 1.1, 0.1)) / 11
    return aps


def make_case(n_img: int, n_det: int, n_gt: int, n_cls: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)

    def boxes(n):
        return torch.cat([torch.rand(n, 2, generator=g) * 1000, torch.rand(n, 1, generator=g) * 60 + 10,
                          torch.rand(n, 1, generator=g) * 8 + 4, (torch.rand(n, 1, generator=g) - 0.5) * math.pi], 1)

    preds, targets = [], []
    for _ in range(n_img):
        gt = boxes(n_gt).double()
        gl = torch.randint(0, n_cls, (n_gt,), generator=g)
        near = gt + torch.randn(n_gt, 5, generator=g, dtype=torch.float64) * torch.tensor([1.5, 1.5, 2, 1, 0.05])
        det = torch.cat([near, boxes(n_det - n_gt).double()])
        dl = torch.cat([gl, torch.randint(0, n_cls, (n_det - n_gt,), generator=g)])
        scores = torch.cat([0.4 + 0.6 * torch.rand(n_gt, generator=g, dtype=torch.float64),
                            0.6 * torch.rand(n_det - n_gt, generator=g, dtype=torch.float64)])
        preds.append({"boxes": det, "scores": scores, "labels": dl})
        targets.append({"boxes": gt, "labels": gl, "difficult": torch.rand(n_gt, generator=g) < 0.1})
    return preds, targets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--dets", type=int, default=200)
    ap.add_argument("--gts", type=int, default=20)
    ap.add_argument("--classes", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    preds, targets = make_case(args.images, args.dets, args.gts, args.classes)
    metric = DOTAMeanAP(num_classes=args.classes)
    metric.update(preds, targets)
    t0 = time.perf_counter()
    ours = metric.compute()
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = devkit_loop(preds, targets, args.classes)
    t_ref = time.perf_counter() - t0
    diff = max(abs(float(ours[f"ap_{c}"]) - ref[c]) for c in range(args.classes) if not np.isnan(ref[c]))
    print(f"threads={torch.get_num_threads()} images={args.images} dets/image={args.dets} gts/image={args.gts} "
          f"classes={args.classes}")
    print(f"DOTAMeanAP.compute   {t_ours * 1000:9.1f} ms   map50={float(ours['map50']):.6f}")
    print(f"devkit-style loop    {t_ref * 1000:9.1f} ms   map50={np.nanmean(ref):.6f}")
    print(f"speed-up x{t_ref / t_ours:.1f}   max |AP difference| = {diff:.2e}")


if __name__ == "__main__":
    main()
