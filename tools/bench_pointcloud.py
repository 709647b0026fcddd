"""Benchmark of the point-cloud ops and training steps, with baselines measured in the same run.

    python tools/bench_pointcloud.py [--threads 1] [--batch 16] [--points 1024]

Prints, with the thread count and sizes: batched FPS vs a per-cloud numpy loop, batched kNN vs a per-cloud
brute-force numpy loop and vs scipy's cKDTree, and the time of one training step (forward + backward + Adam)
of PointNet, frame-averaged PointNet and PaRot (CPU config sizes).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.spatial import cKDTree

from visionkit.ops.points import farthest_point_sampling, knn
from visionkit.tasks.pointcloud import FrameAveraged, PaRot, PointNet


def timeit(fn, repeat: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def naive_fps(x: np.ndarray, m: int) -> np.ndarray:
    out = np.empty((len(x), m), dtype=np.int64)
    for b, cloud in enumerate(x):  # the baseline: one cloud at a time
        chosen = [0]
        dist = np.full(len(cloud), np.inf)
        for _ in range(m - 1):
            dist = np.minimum(dist, ((cloud - cloud[chosen[-1]]) ** 2).sum(-1))
            chosen.append(int(dist.argmax()))
        out[b] = chosen
    return out


def naive_knn(q: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    out = []
    for qb, pb in zip(q, p):
        d = ((qb[:, None] - pb[None]) ** 2).sum(-1)
        out.append(np.argsort(d, axis=1)[:, :k])
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--points", type=int, default=1024)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    B, N = args.batch, args.points
    x = torch.randn(B, N, 3)
    xn = x.numpy()
    print(f"threads={torch.get_num_threads()} batch={B} points={N}")

    M = 256
    ours = timeit(lambda: farthest_point_sampling(x, M))
    base = timeit(lambda: naive_fps(xn, M), repeat=1)
    assert (farthest_point_sampling(x, M).numpy() == naive_fps(xn, M)).all()
    print(f"FPS {M} of {N}:        ours {ours * 1e3:8.1f} ms | numpy per-cloud loop {base * 1e3:8.1f} ms | "
          f"speed-up x{base / ours:.1f}")

    k = 32
    q = x[:, :M]
    ours = timeit(lambda: knn(q, x, k))
    base = timeit(lambda: naive_knn(q.numpy(), xn, k), repeat=1)
    tree = timeit(lambda: [cKDTree(p).query(qq, k) for qq, p in zip(q.numpy(), xn)], repeat=1)
    print(f"kNN {M} queries k={k}: ours {ours * 1e3:8.1f} ms | numpy brute per-cloud {base * 1e3:8.1f} ms "
          f"(x{base / ours:.1f}) | scipy cKDTree per-cloud {tree * 1e3:8.1f} ms (x{tree / ours:.1f})")

    y = torch.randint(0, 10, (B,))
    xs = torch.randn(B, 512, 3)
    nets = {
        "PointNet (32,64,128)": PointNet(10, widths=(32, 64, 128), head=(64, 32)),
        "FA-PointNet (4 frames)": FrameAveraged(PointNet(10, widths=(32, 64, 128), head=(64, 32))),
        "PaRot (CPU config)": PaRot(10, num_centres=32, local_k=32, global_points=16, relation_k=16,
                                    encoder_widths=(32, 64, 64), feat_dim=64, agg_dim=64, emb_dim=256,
                                    head=(128, 64)),
    }
    ref = None
    for name, net in nets.items():
        opt = torch.optim.Adam(net.parameters())

        def step(net=net, opt=opt):
            if isinstance(net, PaRot):
                logits, aux = net.forward_train(xs)
                loss = torch.nn.functional.cross_entropy(logits, y) + sum(aux.values())
            else:
                loss = torch.nn.functional.cross_entropy(net(xs), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        t = timeit(step)
        ref = ref or t
        print(f"train step {name:24s} batch {B} x 512 points: {t * 1e3:8.1f} ms (x{t / ref:.1f} of PointNet)")


if __name__ == "__main__":
    main()
