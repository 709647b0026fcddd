"""DOTAMeanAP against an independent numpy + shapely transcription of the DOTA devkit's ``voc_eval``."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from shapely.geometry import Polygon

from visionkit.tasks.obb.dota_map import DOTAMeanAP

torch.set_num_threads(1)  # the machine is shared: no thread oversubscription


# ----------------------------------------------------------------------------- reference (devkit, literal)
def _poly(b) -> Polygon:
    cx, cy, w, h, t = (float(v) for v in b)
    c, s = math.cos(t), math.sin(t)
    v1 = np.array([w / 2 * c, w / 2 * s])
    v2 = np.array([-h / 2 * s, h / 2 * c])
    ctr = np.array([cx, cy])
    return Polygon([ctr + v1 + v2, ctr + v1 - v2, ctr - v1 - v2, ctr - v1 + v2])


def _iou(a: Polygon, b: Polygon) -> float:
    inter = a.intersection(b).area
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def _voc_ap(rec, prec, use_07):
    if use_07:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = 0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
            ap = ap + p / 11.0
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def reference_aps(preds, targets, num_classes, thr=0.5, use_07=True, strict=True, ignore_difficult=True):
    """Per-class AP, looping over detections one by one like the devkit (NaN for a class without gt)."""
    aps = []
    for c in range(num_classes):
        recs, npos = {}, 0
        for i, t in enumerate(targets):
            m = t["labels"].numpy() == c
            diff = t["difficult"].numpy()[m].astype(bool) if ignore_difficult else np.zeros(m.sum(), bool)
            recs[i] = {"polys": [_poly(b) for b in t["boxes"].numpy()[m]], "difficult": diff,
                       "det": [False] * int(m.sum())}
            npos += int((~diff).sum())
        dets = []
        for i, p in enumerate(preds):
            for b, s, l in zip(p["boxes"].numpy(), p["scores"].numpy(), p["labels"].numpy()):
                if l == c:
                    dets.append((i, float(s), b))
        if npos == 0:
            aps.append(float("nan"))
            continue
        conf = np.array([d[1] for d in dets])
        order = np.argsort(-conf, kind="stable")
        tp, fp = np.zeros(len(dets)), np.zeros(len(dets))
        for d, k in enumerate(order):
            img, _, box = dets[k]
            R = recs[img]
            ovmax, jmax = -np.inf, -1
            if R["polys"]:
                pb = _poly(box)
                ov = np.array([_iou(pb, g) for g in R["polys"]])
                ovmax, jmax = ov.max(), int(ov.argmax())
            if (ovmax > thr) if strict else (ovmax >= thr):
                if not R["difficult"][jmax]:
                    if not R["det"][jmax]:
                        tp[d] = 1.0
                        R["det"][jmax] = True
                    else:
                        fp[d] = 1.0
            else:
                fp[d] = 1.0
        fp, tp = np.cumsum(fp), np.cumsum(tp)
        rec = tp / float(npos)
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        aps.append(_voc_ap(rec, prec, use_07))
    return np.array(aps)


# ----------------------------------------------------------------------------- random cases
def random_case(seed: int, n_img: int = 8, num_classes: int = 3):
    g = np.random.default_rng(seed)
    preds, targets = [], []
    for i in range(n_img):
        m = 0 if i % 5 == 4 else int(g.integers(0, 7))  # some images without objects
        gt = np.column_stack([g.uniform(20, 180, (m, 2)), g.uniform(10, 40, m), g.uniform(4, 10, m),
                              g.uniform(-np.pi / 2, np.pi / 2, m)])
        gl = g.integers(0, num_classes, m)
        diff = g.random(m) < 0.25
        # detections: jittered copies (some duplicated), wrong-class copies, random false positives
        keep = g.random(m) < 0.8
        jit = gt[keep] + np.column_stack([g.normal(0, 1, (keep.sum(), 2)), g.normal(0, 1, (keep.sum(), 2)),
                                          g.normal(0, 0.06, keep.sum())])
        dmask = g.random(len(jit)) < 0.3
        dup = jit[dmask] + g.normal(0, 1, (int(dmask.sum()), 5)) * [1, 1, 1, 1, 0.05]
        nfp = 0 if i % 7 == 6 else int(g.integers(0, 4))
        fps = np.column_stack([g.uniform(20, 180, (nfp, 2)), g.uniform(10, 40, nfp), g.uniform(4, 10, nfp),
                               g.uniform(-np.pi / 2, np.pi / 2, nfp)])
        boxes = np.concatenate([jit, dup, fps]).reshape(-1, 5)
        boxes[:, 2:4] = np.abs(boxes[:, 2:4]) + 1
        labels = np.concatenate([gl[keep], gl[keep][dmask], g.integers(0, num_classes, nfp)]).astype(int)
        flip = g.random(len(labels)) < 0.1
        labels = np.where(flip, (labels + 1) % num_classes, labels)
        scores = np.round(g.random(len(boxes)), 1)  # coarse scores: many ties
        preds.append({"boxes": torch.tensor(boxes, dtype=torch.float64), "scores": torch.tensor(scores),
                      "labels": torch.tensor(labels, dtype=torch.long)})
        targets.append({"boxes": torch.tensor(gt, dtype=torch.float64), "labels": torch.tensor(gl),
                        "difficult": torch.tensor(diff)})
    return preds, targets


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ap_mode", ["voc07", "area"])
def test_matches_reference_on_random_cases(seed, ap_mode):
    preds, targets = random_case(seed)
    thresholds = (0.5, 0.75)
    metric = DOTAMeanAP(iou_thresholds=thresholds, ap_mode=ap_mode, num_classes=3)
    metric.update(preds[:3], targets[:3])
    metric.update(preds[3:], targets[3:])
    out = metric.compute()
    for ti, thr in enumerate(thresholds):
        ref = reference_aps(preds, targets, 3, thr=thr, use_07=ap_mode == "voc07")
        key = f"map{round(thr * 100)}"
        assert out[key].item() == pytest.approx(np.nanmean(ref), abs=1e-12)
        if ti == 0:
            assert out["map"].item() == pytest.approx(np.nanmean(ref), abs=1e-12)
            for c in range(3):
                got = out[f"ap_{c}"].item()
                assert (math.isnan(got) and math.isnan(ref[c])) or got == pytest.approx(ref[c], abs=1e-12)


def test_difficult_not_ignored_and_ge_match():
    preds, targets = random_case(11)
    m = DOTAMeanAP(ignore_difficult=False, match="ge", ap_mode="area", num_classes=3)
    m.update(preds, targets)
    ref = reference_aps(preds, targets, 3, use_07=False, strict=False, ignore_difficult=False)
    assert m.compute()["map50"].item() == pytest.approx(np.nanmean(ref), abs=1e-12)


def test_threshold_equality_gt_vs_ge():
    # w = 12, shift 4: intersection 8*4 = 32, union 64, IoU exactly 0.5
    gt = {"boxes": torch.tensor([[10.0, 10.0, 12.0, 4.0, 0.0]], dtype=torch.float64), "labels": torch.tensor([0]),
          "difficult": torch.tensor([False])}
    det = {"boxes": torch.tensor([[14.0, 10.0, 12.0, 4.0, 0.0]], dtype=torch.float64), "scores": torch.tensor([0.9]),
           "labels": torch.tensor([0])}
    strict, loose = DOTAMeanAP(match="gt"), DOTAMeanAP(match="ge")
    strict.update([det], [gt])
    loose.update([det], [gt])
    assert strict.compute()["map50"].item() == 0.0
    assert loose.compute()["map50"].item() == pytest.approx(1.0)


def test_difficult_match_is_ignored_and_best_gt_taken_is_fp():
    boxes = torch.tensor([[50.0, 50.0, 30.0, 10.0, 0.3], [52.0, 50.0, 30.0, 10.0, 0.3]], dtype=torch.float64)
    tgt = {"boxes": boxes[:1], "labels": torch.tensor([0]), "difficult": torch.tensor([True])}
    det = {"boxes": boxes, "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([0, 0])}
    m = DOTAMeanAP(num_classes=1)
    m.update([det], [tgt])
    out = m.compute()
    assert math.isnan(out["ap_0"].item()) and math.isnan(out["map"].item())  # only a difficult gt: no class
    # two gts, both detections closest to the first: the second is an FP even though gt 2 is free
    far = torch.tensor([[50.0, 62.0, 30.0, 10.0, 0.3]], dtype=torch.float64)
    tgt = {"boxes": torch.cat([boxes[:1], far]), "labels": torch.tensor([0, 0]), "difficult": torch.tensor([0, 0])}
    m = DOTAMeanAP(num_classes=1, ap_mode="area")
    m.update([det], [tgt])
    # TP then FP: recall 0.5 at precision 1 -> area 0.5
    assert m.compute()["map50"].item() == pytest.approx(0.5)


def test_class_without_gt_excluded_and_names():
    preds, targets = random_case(3, num_classes=2)
    for t in targets:  # class 1 disappears from the ground truth
        keep = t["labels"] == 0
        for k in ("boxes", "labels", "difficult"):
            t[k] = t[k][keep]
    m = DOTAMeanAP(class_names=["plane", "ship"])
    m.update(preds, targets)
    out = m.compute()
    assert math.isnan(out["ap_ship"].item())
    assert out["map50"].item() == pytest.approx(out["ap_plane"].item())


def test_coco_thresholds_keys():
    preds, targets = random_case(5)
    thr = tuple(0.5 + 0.05 * i for i in range(10))
    m = DOTAMeanAP(iou_thresholds=thr, num_classes=3)
    m.update(preds, targets)
    out = m.compute()
    per = [out[f"map{round(t * 100)}"].item() for t in thr]
    assert out["map_50_95"].item() == pytest.approx(np.mean(per))
    assert per[0] >= per[5] >= per[-1]  # AP cannot grow with the threshold
    assert out["map75"].item() == pytest.approx(np.nanmean(reference_aps(preds, targets, 3, thr=0.75)), abs=1e-12)


def test_empty_inputs():
    m = DOTAMeanAP(num_classes=2)
    e5 = torch.zeros(0, 5)
    m.update([{"boxes": e5, "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}],
             [{"boxes": torch.tensor([[5.0, 5.0, 4.0, 2.0, 0.0]]), "labels": torch.tensor([1])}])
    out = m.compute()
    assert out["ap_1"].item() == 0.0 and out["map50"].item() == 0.0


def test_bad_input_names_the_key():
    m = DOTAMeanAP()
    with pytest.raises(ValueError, match=r"preds\[0\]\['scores'\]"):
        m.update([{"boxes": torch.zeros(2, 5), "scores": torch.zeros(3), "labels": torch.zeros(2)}],
                 [{"boxes": torch.zeros(0, 5), "labels": torch.zeros(0)}])
    with pytest.raises(ValueError, match="ap_mode"):
        DOTAMeanAP(ap_mode="coco")
    with pytest.raises(ValueError, match=r"targets\[0\]\['labels'\]: class indices must lie in \[0, 2\)"):
        DOTAMeanAP(num_classes=2).update([{"boxes": torch.zeros(0, 5), "scores": torch.zeros(0),
                                           "labels": torch.zeros(0)}],
                                         [{"boxes": torch.ones(1, 5), "labels": torch.tensor([2])}])


@pytest.mark.filterwarnings("ignore:The ..compute.. method")
def test_merged_states_equal_single_pass():
    """Two metric objects fed disjoint halves, states concatenated as a DDP gather does."""
    preds, targets = random_case(8, n_img=10)
    whole = DOTAMeanAP(num_classes=3)  # the gathered order: rank 0's images, then rank 1's (matters for ties)
    whole.update(preds[::2] + preds[1::2], targets[::2] + targets[1::2])
    a, b = DOTAMeanAP(num_classes=3), DOTAMeanAP(num_classes=3)
    a.update(preds[::2], targets[::2])  # interleaved like a DistributedSampler
    b.update(preds[1::2], targets[1::2])
    merged = DOTAMeanAP(num_classes=3)
    for name in merged._defaults:
        # the gather concatenates each process's list into one tensor, rank after rank
        setattr(merged, name, torch.cat([torch.cat(getattr(a, name)), torch.cat(getattr(b, name))]))
    ref, got = whole.compute(), merged.compute()
    assert got.keys() == ref.keys()
    for k in ref:
        assert torch.allclose(got[k], ref[k], equal_nan=True), k


@pytest.mark.slow
@pytest.mark.distributed
def test_two_process_gloo(tmp_path):
    script = textwrap.dedent(
        """
        import os, sys, torch, torch.distributed as dist
        sys.path.insert(0, os.environ["TEST_DIR"])
        from test_dota_map import random_case
        from visionkit.tasks.obb.dota_map import DOTAMeanAP
        rank = int(sys.argv[1])
        dist.init_process_group("gloo", init_method="file://" + os.environ["INIT_FILE"], rank=rank, world_size=2)
        preds, targets = random_case(21, n_img=9)
        m = DOTAMeanAP(num_classes=3)
        m.update(preds[rank::2], targets[rank::2])
        out = m.compute()
        if rank == 0:
            single = DOTAMeanAP(num_classes=3, sync_on_compute=False)
            single.update(preds[0::2] + preds[1::2], targets[0::2] + targets[1::2])
            ref = single.compute()
            assert all(torch.allclose(out[k], ref[k], equal_nan=True) for k in ref), (out, ref)
            print("OK", float(out["map50"]))
        dist.barrier()
        dist.destroy_process_group()
        """
    )
    path = tmp_path / "run.py"
    path.write_text(script)
    env = dict(os.environ, TEST_DIR=os.path.dirname(__file__), INIT_FILE=str(tmp_path / "init"),
               OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, str(path), str(r)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert "OK" in outs[0][0]
