"""Short PointOBB training runs without the trainer, for comparing settings on the synthetic set.

    OMP_NUM_THREADS=1 python tools/pointobb_short_run.py --steps 300 --task '{"stage0_sigmoid": true}'

Trains ``PointOBBTask`` (the synthetic config's model unless ``--task`` overrides arguments as JSON) on
``--ntrain`` synthetic images with AdamW, linear warm-up and cosine decay; the schedule fraction drives the
progressive switches as in ``fit``. Every ``--evalevery`` steps it prints the mean of the last 20 loss values,
the wall and CPU seconds, and on 100 validation images: the mean IoU of the stage-1 (pseudo) and stage-0 boxes
with the true boxes, the median ratio of stage-0 to true ``sqrt(w h)`` and the mean angle error (degrees,
modulo 90) of the dense-to-sparse angles of each FPN level.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import fields

import numpy as np
import torch

from visionkit.datamodules.base import collate_dict, images_to_float
from visionkit.datamodules.obb.synthetic import SyntheticOBBDataset
from visionkit.ops.rotated_boxes import box_iou_rotated
from visionkit.tasks.obb.pointobb import PointOBBConfig, PointOBBTask


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--bs", type=int, default=8)
    p.add_argument("--ntrain", type=int, default=1000)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--task", default="{}", help="PointOBBTask arguments and network options (PointOBBConfig fields) "
                                                "as one JSON object, over the defaults here")
    p.add_argument("--data", default="{}", help="SyntheticOBBDataset arguments as JSON")
    p.add_argument("--evalevery", type=int, default=100)
    p.add_argument("--oracle-angles", action="store_true",
                   help="replace the dense-to-sparse angles by the true box angles (upper bound of the MIL part)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model initialisation and the batch order")
    p.add_argument("--save", default=None, help="write the trained model's state dict here")
    a = p.parse_args()
    torch.manual_seed(a.seed)
    dkw = json.loads(a.data)
    tr = SyntheticOBBDataset(a.ntrain, split="train", label_mode="point", **dkw)
    va = SyntheticOBBDataset(100, split="val", label_mode="point", **dkw)
    kw = dict(backbone_kwargs={"widths": [16, 32, 64, 128], "out_indices": [1, 2, 3]}, fpn_channels=64, roi_size=5,
              head_dim=128, finest_scale=64.0, stage0_sigmoid=True, num_negatives=32, angle_loss_start=0.0,
              angle_proposal_start=1.0)
    kw.update(json.loads(a.task))
    net_keys = {f.name for f in fields(PointOBBConfig)}
    net = PointOBBConfig(**{k: v for k, v in kw.items() if k in net_keys})
    task = PointOBBTask(pointobb=net, **{k: v for k, v in kw.items() if k not in net_keys})
    task._update_progress = lambda: None  # the loop below sets the schedule fraction
    true_angles: dict[str, torch.Tensor] = {}
    if a.oracle_angles:
        d2s = task.model.dense_to_sparse

        def oracle(amaps, pts, bidx):  # the true angle of each point's box on every level
            theta, enc, cons = d2s(amaps, pts, bidx)
            t = true_angles["theta"]
            return (t[:, None].to(theta).expand_as(theta).clone() if t.shape[0] == theta.shape[0] else theta), enc, cons

        task.model.dense_to_sparse = oracle
    opt = torch.optim.AdamW(task.parameters(), lr=a.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * s / a.steps)))

    @torch.no_grad()
    def evaluate() -> tuple[float, float, float, list[float]]:
        task.eval()
        ious, ious0, ratio, aerr = [], [], [], []
        for i in range(0, len(va), 20):
            b = images_to_float(collate_dict([va[j] for j in range(i, min(len(va), i + 20))]), ("image",))
            true_angles["theta"] = torch.cat(list(b["gt_boxes"]))[:, 4]
            out = task.model.run(b["image"], list(b["points"]), list(b["labels"]),
                                 rotate_proposals=task.rotate_proposals())
            g = torch.cat(list(b["gt_boxes"])).double()
            box0 = out.stage0.boxes
            ious.append(box_iou_rotated(out.boxes.double(), g, aligned=True))
            ious0.append(box_iou_rotated(box0.double(), g, aligned=True))
            d = torch.remainder(out.theta.double() - g[:, 4:5] + math.pi / 4, math.pi / 2) - math.pi / 4
            aerr.append(d.abs())  # (N, L)
            ratio.append((box0[:, 2] * box0[:, 3]).sqrt() / (g[:, 2] * g[:, 3]).sqrt())
        task.train()
        return (torch.cat(ious).mean().item(), torch.cat(ious0).mean().item(), torch.cat(ratio).median().item(),
                (torch.cat(aerr).mean(0) * 180 / math.pi).tolist())

    g = torch.Generator().manual_seed(a.seed)
    t0, hist = time.time(), []
    for step in range(a.steps):
        task.progress.fill_(step / a.steps)
        idx = torch.randint(0, len(tr), (a.bs,), generator=g).tolist()
        batch = images_to_float(collate_dict([tr[j] for j in idx]), ("image",))
        true_angles["theta"] = torch.cat(list(batch["gt_boxes"]))[:, 4]
        losses = task.batch_losses(batch)
        opt.zero_grad()
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(task.parameters(), 10.0)
        opt.step()
        sched.step()
        hist.append({k: float(v.detach()) for k, v in losses.items()})
        if (step + 1) % a.evalevery == 0 or step + 1 == a.steps:
            mean = " ".join(f"{k}={np.mean([h[k] for h in hist[-20:]]):.3f}" for k in hist[-1])
            miou, miou0, r, ae = evaluate()
            print(f"step {step + 1} t={time.time() - t0:.0f}s cpu={time.process_time():.0f}s {mean} | "
                  f"miou1={miou:.3f} miou0={miou0:.3f} scale_ratio0={r:.2f} angerr90={[round(x, 1) for x in ae]}",
                  flush=True)
    if a.save:
        torch.save(task.state_dict(), a.save)


if __name__ == "__main__":
    main()
