"""Benchmarks of the hands family.

Speed (default): training-step and inference time of DIR with N refinement iterations against the
initial-estimate-only model (``num_iterations=0``) measured in the same process, and the cost per iteration::

    python tools/bench_hands.py --batch-size 32 --steps 5

Accuracy (``--checkpoint``): test-split MPJPE / PA-MPJPE / MRRPE of every estimate of a trained DIR on
SyntheticHands, next to the mean-pose baseline (the mean root-relative training pose for every image and the mean
right-to-left offset)::

    python tools/bench_hands.py --checkpoint runs/hands/synthetic/checkpoints/last.ckpt

Lifting from true 2D joints (``--lift-steps N``): how well the hand layer's parameters can be regressed from
exact (or noisy, ``--lift-noise`` px) 2D joints alone, by an MLP trained for N steps on the SyntheticHands
training split: the PA-MPJPE the image model could reach if its 2D finger evidence were that good::

    python tools/bench_hands.py --lift-steps 1000 --lift-noise 0

InterHand2.6M annotation memory (``--interhand-memory N``): bytes per sample that the loader keeps after reading
N interacting frames written in the official JSON format (``tracemalloc``, after garbage collection);
``--loader file.py`` measures another version of ``datamodules/hands/interhand.py`` the same way::

    python tools/bench_hands.py --interhand-memory 5000
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from visionkit.callbacks.checkpoint import CONFIG_KEY
from visionkit.datamodules.base import collate_dict
from visionkit.datamodules.hands.synthetic import SyntheticHands
from visionkit.io import load_torch
from visionkit.tasks.hands import HandReconstructionTask
from visionkit.tasks.hands.kinematics import root_relative
from visionkit.tasks.hands.metrics import MPJPE, MRRPE, PAMPJPE

CPU_MODEL = {"backbone_kwargs": {"widths": [12, 24, 48, 64, 96], "out_indices": [1, 2, 3, 4]}, "dim": 48,
             "hidden": 384, "bone_channels": 2, "refine_strides": (8, 4)}


def _time(fn, steps: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def bench_speed(batch_size: int, steps: int, image_size: int, iterations: int) -> None:
    dm = SyntheticHands(num_train=batch_size, num_val=1, num_test=1, image_size=image_size, batch_size=batch_size)
    dm.setup("fit")
    batch = collate_dict([dm.train_dataset[i] for i in range(batch_size)])
    rows = []
    for n in (0, iterations):
        torch.manual_seed(0)
        task = HandReconstructionTask(num_iterations=n, **CPU_MODEL)
        opt = torch.optim.AdamW(task.parameters(), lr=1e-4)

        def train_step(task=task, opt=opt) -> None:
            loss = task.batch_losses(batch)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()

        def infer(task=task) -> None:
            with torch.no_grad():
                task(batch)

        task.train()
        t_train = _time(train_step, steps)
        task.eval()
        t_inf = _time(infer, steps)
        rows.append((n, t_train, t_inf))
    base_train, base_inf = rows[0][1], rows[0][2]
    print(f"threads={torch.get_num_threads()} batch={batch_size} image={image_size}x{image_size} steps={steps}")
    print("| model | train step (s) | ratio | inference (s) | ratio |")
    print("|---|---|---|---|---|")
    for n, tt, ti in rows:
        name = "initial estimate only" if n == 0 else f"DIR, {n} iterations"
        print(f"| {name} | {tt:.3f} | {tt / base_train:.2f} | {ti:.3f} | {ti / base_inf:.2f} |")
    n, tt, ti = rows[-1]
    if n:
        print(f"per refinement iteration: train +{(tt - base_train) / n:.3f} s "
              f"({(tt - base_train) / n / base_train:.2f}x the initial-only step), "
              f"inference +{(ti - base_inf) / n:.3f} s ({(ti - base_inf) / n / base_inf:.2f}x)")


def checkpoint_focal(checkpoint: str) -> float | None:
    """The SyntheticHands focal length stored with a checkpoint's run configuration, if any."""
    ckpt = load_torch(checkpoint)  # no code runs from the file
    data = (ckpt.get(CONFIG_KEY) or {}).get("data") or {}
    if not str(data.get("class_path", "")).endswith("SyntheticHands"):
        return None
    focal = (data.get("init_args") or {}).get("focal")
    return None if focal is None else float(focal)


def bench_accuracy(checkpoint: str, batch_size: int, focal: float | None = None) -> None:
    task = HandReconstructionTask.load_from_checkpoint(checkpoint, map_location="cpu", init_weights=None).eval()
    if focal is None:  # the images the model was trained on (configs/hands/synthetic_keypoints.yaml: 280 px)
        focal = checkpoint_focal(checkpoint)
    # the 3D joints do not depend on the focal length (same seeds), only the images do
    dm = SyntheticHands(num_train=2240, num_val=1, num_test=500, batch_size=batch_size, seed=0,
                        **({} if focal is None else {"focal": focal}))
    dm.setup("fit")
    dm.setup("test")
    train = dm.train_dataset.data["joints3d"]
    mean_rel = root_relative(train).mean(0)  # (42, 3)
    mean_offset = (train[:, 41] - train[:, 20]).mean(0)
    n_est = task.hparams.num_iterations + 1
    metrics = {name: [cls(iteration=k) for k in range(n_est)] + [cls()]
               for name, cls in (("MPJPE", MPJPE), ("PA-MPJPE", PAMPJPE), ("MRRPE", MRRPE))}
    baseline = {name: cls() for name, cls in (("MPJPE", MPJPE), ("PA-MPJPE", PAMPJPE), ("MRRPE", MRRPE))}
    for batch in dm.test_dataloader():
        with torch.no_grad():
            preds = task(batch)
        gt, valid = batch["joints3d"], batch["joint_valid"]
        for ms in metrics.values():
            for m in ms:
                m.update(preds["joints3d"], gt, valid, preds["iterations"])
        base = mean_rel.expand_as(gt).clone()
        base[:, 21:] += mean_offset
        for m in baseline.values():
            m.update(base, gt, valid)
    print(f"SyntheticHands test split (500 images, focal {dm.focal:g} px), checkpoint {checkpoint}")
    print("| estimate | MPJPE (mm) | PA-MPJPE (mm) | MRRPE (mm) | MPJPE / initial |")
    print("|---|---|---|---|---|")
    first = metrics["MPJPE"][0].compute().item()
    print(f"| mean-pose baseline | {baseline['MPJPE'].compute():.2f} | {baseline['PA-MPJPE'].compute():.2f} | "
          f"{baseline['MRRPE'].compute():.2f} | {baseline['MPJPE'].compute().item() / first:.3f} |")
    for k in range(n_est):
        name = "initial estimate" if k == 0 else f"iteration {k}"
        mp = metrics["MPJPE"][k].compute().item()
        print(f"| {name} | {mp:.2f} | {metrics['PA-MPJPE'][k].compute():.2f} | "
              f"{metrics['MRRPE'][k].compute():.2f} | {mp / first:.3f} |")


def bench_lifting(steps: int, noise: float, batch_size: int = 64) -> None:
    from visionkit.datamodules.hands.synthetic import generate_hands
    from visionkit.ops.rotations import rotation_6d_to_matrix
    from visionkit.tasks.hands.procedural import ProceduralHandLayer

    torch.manual_seed(0)
    train, val = generate_hands(2240, 1), generate_hands(256, 2)  # the seeds of SyntheticHands(seed=0)
    layers = [ProceduralHandLayer("right"), ProceduralHandLayer("left")]
    g = torch.Generator().manual_seed(0)

    def inputs(uv: torch.Tensor) -> torch.Tensor:  # (n, 42, 2) px -> (n, 2, 42) wrist-relative, /32 px
        uv = uv.reshape(-1, 2, 21, 2)
        if noise:
            uv = uv + noise * torch.randn(uv.shape, generator=g)
        return ((uv - uv[:, :, 20:21]) / 32).flatten(2)

    def decode(p: torch.Tensor) -> torch.Tensor:  # (n, 2, 61) -> root-relative joints (n, 42, 3)
        out = []
        for h, layer in enumerate(layers):
            q = p[:, h]
            rot = rotation_6d_to_matrix(q[:, :6] + q.new_tensor([1.0, 0, 0, 0, 1, 0]))
            out.append(layer(rot, q[:, 6:51], q[:, 51:61]).joints)
        return root_relative(torch.cat(out, 1))

    net = torch.nn.Sequential(torch.nn.Linear(42, 512), torch.nn.GELU(), torch.nn.Linear(512, 512), torch.nn.GELU(),
                              torch.nn.Linear(512, 61))
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    gt_train, gt_val = root_relative(train["joints3d"]), root_relative(val["joints3d"])
    t0 = time.process_time()
    for _ in range(steps):
        idx = torch.randint(0, len(gt_train), (batch_size,), generator=g)
        loss = torch.nn.functional.huber_loss(decode(net(inputs(train["joints2d"][idx]))) / 10, gt_train[idx] / 10)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = decode(net(inputs(val["joints2d"])))
    ones = torch.ones(len(pred), 42)
    pa, mp = PAMPJPE(), MPJPE()
    pa.update(pred, gt_val, ones)
    mp.update(pred, gt_val, ones)
    print(f"lifting from true 2D joints (+ {noise} px noise), {steps} steps of batch {batch_size}, "
          f"{time.process_time() - t0:.0f} s CPU: validation MPJPE {mp.compute():.2f} mm, "
          f"PA-MPJPE {pa.compute():.2f} mm")


def write_interhand_annotations(root: Path, n: int, split: str = "train", cameras: int = 8, seed: int = 0) -> None:
    """``n`` interacting frames of one capture seen by ``cameras`` cameras, in the official JSON files."""
    rng = np.random.default_rng(seed)
    cap = "0"
    images, anns, joints, mano = [], [], {cap: {}}, {cap: {}}
    for k in range(n):
        frame, cam = str(1000 + k // cameras), str(400000 + k % cameras)
        images.append({"id": k, "file_name": f"Capture{cap}/seq/cam{cam}/image{frame}.jpg", "width": 334,
                       "height": 512, "capture": int(cap), "camera": cam, "frame_idx": int(frame)})
        anns.append({"id": k, "image_id": k, "joint_valid": [[1]] * 42, "hand_type": "interacting",
                     "hand_type_valid": 1})
        if frame not in joints[cap]:
            joints[cap][frame] = {"world_coord": rng.normal(500, 50, (42, 3)).round(4).tolist()}
            fit = {"pose": rng.normal(size=48).round(6).tolist(), "shape": rng.normal(size=10).round(6).tolist(),
                   "trans": rng.normal(size=3).round(6).tolist()}
            mano[cap][frame] = {"right": fit, "left": fit}
    cams = {cap: {"campos": {}, "camrot": {}, "focal": {}, "princpt": {}}}
    for c in range(cameras):
        cam = str(400000 + c)
        cams[cap]["campos"][cam] = [0.0, 0.0, -1000.0]
        cams[cap]["camrot"][cam] = np.eye(3).tolist()
        cams[cap]["focal"][cam] = [1200.0, 1200.0]
        cams[cap]["princpt"][cam] = [167.0, 256.0]
    folder = root / "annotations" / split
    folder.mkdir(parents=True, exist_ok=True)
    for kind, obj in (("data", {"images": images, "annotations": anns}), ("camera", cams), ("joint_3d", joints),
                      ("MANO_NeuralAnnot", mano)):
        (folder / f"InterHand2.6M_{split}_{kind}.json").write_text(json.dumps(obj))


def bench_interhand_memory(n: int, loader: str | None) -> None:
    if loader:
        spec = importlib.util.spec_from_file_location("interhand_under_test", loader)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        dataset_cls = module.InterHandDataset
    else:
        from visionkit.datamodules.hands.interhand import InterHandDataset as dataset_cls
    with tempfile.TemporaryDirectory() as tmp:
        write_interhand_annotations(Path(tmp), n)
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        ds = dataset_cls(tmp, "train")
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
    print(f"loader {loader or 'visionkit.datamodules.hands.interhand'}: {len(ds)} samples, {kept} bytes kept, "
          f"{kept / len(ds):.0f} bytes per sample")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="evaluate a trained DIR instead of timing")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--interhand-memory", type=int, metavar="N", help="InterHand2.6M annotation bytes per sample")
    p.add_argument("--loader", help="with --interhand-memory: path of another interhand.py to measure")
    p.add_argument("--focal", type=float, help="with --checkpoint: SyntheticHands focal length (px); "
                   "default: the one in the checkpoint's run configuration, else SyntheticHands' default")
    p.add_argument("--lift-steps", type=int, help="train an MLP lifting true 2D joints to the hand layer")
    p.add_argument("--lift-noise", type=float, default=0.0, help="with --lift-steps: 2D noise (px)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.lift_steps:
        bench_lifting(a.lift_steps, a.lift_noise)
    elif a.interhand_memory:
        bench_interhand_memory(a.interhand_memory, a.loader)
    elif a.checkpoint:
        bench_accuracy(a.checkpoint, a.batch_size, a.focal)
    else:
        bench_speed(a.batch_size, a.steps, a.image_size, a.iterations)


if __name__ == "__main__":
    main()
