"""``DOTAMeanAP``: mean average precision of oriented boxes with the DOTA devkit's protocol, right under DDP.

Protocol (per class, over all images):

1. Detections of the class are sorted by score, highest first (stable: ties keep the order in which they were
   given, image by image).
2. Each detection is compared with every ground-truth box of the class in its image by exact polygon IoU
   (:func:`visionkit.ops.rotated_boxes.box_iou_rotated`); its candidate is the gt of highest IoU (the first one
   on ties), whether or not that gt is already matched -- exactly the devkit's ``voc_eval`` (and mmrotate's
   ``tpfp_default``).
3. If that IoU passes the threshold (``match='gt'``: ``IoU > thr``, the devkit; ``match='ge'``: ``IoU >= thr``,
   mmrotate): a difficult candidate makes the detection ignored (neither TP nor FP) when
   ``ignore_difficult``; otherwise the detection is a TP if the candidate is not matched yet (it then becomes
   matched) and an FP if it is. A detection that does not pass is an FP.
4. Recall is ``TP / #(non-difficult gt)`` (all gt if not ``ignore_difficult``), precision ``TP / (TP + FP)``;
   AP is the VOC07 11-point interpolation (``ap_mode='voc07'``, recall points ``np.arange(0, 1.1, 0.1)``,
   the DOTA server's setting) or the area under the monotone precision envelope (``'area'``, mmrotate).
5. The mean is over classes with at least one counted gt; classes without are left out (their AP is NaN).

Step 2 makes the greedy matching vectorisable: a detection's candidate does not depend on the others, so a TP
is simply the highest-scoring passing detection of each non-difficult gt.

Output of :meth:`DOTAMeanAP.compute` (float64 scalar tensors):

* ``map``: mean AP at the first IoU threshold;
* ``map50``, ``map75``, ... : mean AP at each threshold that is a multiple of 0.05 (``map50`` at 0.5);
* ``map_50_95``: mean over the thresholds when they are exactly 0.50, 0.55, ..., 0.95;
* ``ap_<class>``: per-class AP at the first threshold (class names, or indices when no names are given).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["DOTAMeanAP", "average_precision", "match_detections"]

_COCO_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def _hbb(boxes: Tensor) -> Tensor:
    """Axis-aligned extent ``(N, 4)`` xyxy of le90 boxes ``(N, 5)``."""
    c, s = torch.cos(boxes[:, 4]).abs(), torch.sin(boxes[:, 4]).abs()
    ex = boxes[:, 2] / 2 * c + boxes[:, 3] / 2 * s
    ey = boxes[:, 2] / 2 * s + boxes[:, 3] / 2 * c
    return torch.stack([boxes[:, 0] - ex, boxes[:, 1] - ey, boxes[:, 0] + ex, boxes[:, 1] + ey], -1)


def _pair_iou(det: Tensor, gt: Tensor, di: Tensor, gi: Tensor, chunk: int = 1 << 20) -> Tensor:
    """IoU of the pairs ``(det[di[k]], gt[gi[k]])`` -> ``(P,)``; pairs whose horizontal extents do not
    overlap are 0 without polygon clipping."""
    from visionkit.ops.rotated_boxes import box_iou_rotated

    out = torch.zeros(di.numel(), dtype=det.dtype)
    if di.numel() == 0:
        return out
    hd, hg = _hbb(det), _hbb(gt)
    a, b = hd[di], hg[gi]
    overlap = (torch.minimum(a[:, 2], b[:, 2]) > torch.maximum(a[:, 0], b[:, 0])) & (
        torch.minimum(a[:, 3], b[:, 3]) > torch.maximum(a[:, 1], b[:, 1]))
    idx = overlap.nonzero().flatten()
    for start in range(0, idx.numel(), chunk):  # bounded memory for millions of pairs
        k = idx[start:start + chunk]
        out[k] = box_iou_rotated(det[di[k]], gt[gi[k]], aligned=True).to(det.dtype)
    return out


def match_detections(
    det_boxes: Tensor,
    det_scores: Tensor,
    det_labels: Tensor,
    det_img: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    gt_img: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """Order detections by score and find each one's best ground truth of the same image and class.

    Args:
        det_boxes: ``(D, 5)``; det_scores ``(D,)``; det_labels ``(D,)``; det_img ``(D,)`` image index.
        gt_boxes: ``(G, 5)``; gt_labels ``(G,)``; gt_img ``(G,)``.

    Returns:
        ``rank (D,)`` position of each detection in the stable descending score order, ``best_iou (D,)``
        (-inf without a gt of its image and class) and ``best_gt (D,)`` (index into the gts, -1 if none).
    """
    D = det_boxes.shape[0]
    order = torch.sort(-det_scores, stable=True).indices
    rank = torch.empty(D, dtype=torch.long)
    rank[order] = torch.arange(D)
    best_iou = torch.full((D,), -math.inf, dtype=det_boxes.dtype)
    best_gt = torch.full((D,), -1, dtype=torch.long)
    if D == 0 or gt_boxes.shape[0] == 0:
        return rank, best_iou, best_gt
    n_cls = int(max(det_labels.max(), gt_labels.max())) + 1
    gkey = gt_img * n_cls + gt_labels  # (G,) group of each gt
    gorder = torch.sort(gkey, stable=True).indices
    gsorted = gkey[gorder]
    dkey = det_img * n_cls + det_labels
    start = torch.searchsorted(gsorted, dkey, right=False)
    end = torch.searchsorted(gsorted, dkey, right=True)
    counts = end - start  # (D,) gts in the same image and class
    di = torch.repeat_interleave(torch.arange(D), counts)  # (P,) pair -> detection
    first = torch.cumsum(counts, 0) - counts
    gi = gorder[start[di] + torch.arange(di.numel()) - first[di]]  # (P,) pair -> gt, ascending gt index
    iou = _pair_iou(det_boxes, gt_boxes, di, gi)
    has = counts > 0
    mx = torch.full((D,), -math.inf, dtype=iou.dtype).scatter_reduce(0, di, iou, "amax", include_self=True)
    # the first gt (lowest index) reaching the maximum, as numpy's argmax
    at_max = iou == mx[di]
    cand = torch.where(at_max, gi, torch.full_like(gi, torch.iinfo(torch.long).max))
    arg = torch.full((D,), torch.iinfo(torch.long).max, dtype=torch.long).scatter_reduce(0, di, cand, "amin")
    best_iou = torch.where(has, mx, best_iou)
    best_gt = torch.where(has, arg, best_gt)
    return rank, best_iou, best_gt


def average_precision(tp: Tensor, fp: Tensor, npos: int, mode: str = "voc07") -> float:
    """AP of one class from TP/FP flags in descending score order.

    Args:
        tp, fp: ``(D,)`` 0/1 flags (ignored detections removed or given as 0/0).
        npos: number of counted ground-truth boxes (> 0).
        mode: ``'voc07'`` (11 recall points 0, 0.1, ..., 1.0) or ``'area'``.
    """
    tp_c = torch.cumsum(tp.double(), 0)
    fp_c = torch.cumsum(fp.double(), 0)
    rec = tp_c / npos
    prec = tp_c / torch.clamp(tp_c + fp_c, min=float(np.finfo(np.float64).eps))
    if mode == "voc07":
        ts = torch.from_numpy(np.arange(0.0, 1.1, 0.1))  # the devkit's recall points, rounding included
        if rec.numel() == 0:
            return 0.0
        ok = rec[None, :] >= ts[:, None]  # (11, D)
        p = torch.where(ok, prec[None, :], torch.zeros(())).amax(1)
        return float(p.sum() / 11.0)
    mrec = torch.cat([rec.new_zeros(1), rec, rec.new_ones(1)])
    mpre = torch.cat([prec.new_zeros(1), prec, prec.new_zeros(1)])
    env = torch.flip(torch.cummax(torch.flip(mpre, [0]), 0).values, [0])
    step = (mrec[1:] != mrec[:-1]).nonzero().flatten()
    return float(((mrec[step + 1] - mrec[step]) * env[step + 1]).sum())


class DOTAMeanAP(Metric):
    """Mean average precision of oriented boxes, DOTA devkit protocol (see the module docstring).

    ``update(preds, targets)`` takes one dict per image: ``preds`` with ``boxes (N, 5)`` (cx, cy, w, h, theta;
    radians), ``scores (N,)``, ``labels (N,)``; ``targets`` with ``boxes (M, 5)``, ``labels (M,)`` and
    optionally ``difficult (M,)`` bool (default all False). All states are lists reduced by concatenation,
    including the per-image box counts, so image identities survive the gather under DDP without knowing
    the rank: after a sync the images of all processes are simply numbered in gathered order.

    Args:
        iou_thresholds: IoU thresholds; the first one gives ``map`` and the per-class APs.
        ap_mode: ``'voc07'`` (11-point, DOTA server) or ``'area'`` (mmrotate).
        match: ``'gt'`` (IoU > thr, the devkit) or ``'ge'`` (IoU >= thr, mmrotate).
        ignore_difficult: ignore detections matched to difficult gts and leave those out of the recall.
        num_classes: number of classes (default: ``len(class_names)`` or inferred from the labels seen).
        class_names: names used in the per-class keys ``ap_<name>``.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(
        self,
        iou_thresholds: Sequence[float] = (0.5,),
        ap_mode: str = "voc07",
        match: str = "gt",
        ignore_difficult: bool = True,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if ap_mode not in ("voc07", "area"):
            raise ValueError(f"ap_mode: expected 'voc07' or 'area', got {ap_mode!r}")
        if match not in ("gt", "ge"):
            raise ValueError(f"match: expected 'gt' (IoU > thr) or 'ge' (IoU >= thr), got {match!r}")
        thr = tuple(float(t) for t in iou_thresholds)
        if not thr or any(not 0.0 <= t <= 1.0 for t in thr):
            raise ValueError(f"iou_thresholds: expected values in [0, 1], got {iou_thresholds}")
        if class_names is not None and num_classes is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names but num_classes is {num_classes}")
        self.iou_thresholds = thr
        self.ap_mode, self.match, self.ignore_difficult = ap_mode, match, ignore_difficult
        self.class_names = list(class_names) if class_names is not None else None
        self.num_classes = num_classes if num_classes is not None else (
            len(class_names) if class_names is not None else None)
        for name in ("det_boxes", "det_scores", "det_labels", "det_counts",
                     "gt_boxes", "gt_labels", "gt_difficult", "gt_counts"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    # ------------------------------------------------------------------ update
    def update(self, preds: Sequence[dict[str, Tensor]], targets: Sequence[dict[str, Tensor]]) -> None:
        """Add a batch of images (one pred dict and one target dict per image)."""
        if len(preds) != len(targets):
            raise ValueError(f"update: {len(preds)} prediction dicts but {len(targets)} target dicts")
        for i, (p, t) in enumerate(zip(preds, targets)):
            pb = _boxes(p, "boxes", f"preds[{i}]")
            ps = _vec(p, "scores", pb.shape[0], f"preds[{i}]").to(torch.float64)
            pl = _vec(p, "labels", pb.shape[0], f"preds[{i}]").long()
            tb = _boxes(t, "boxes", f"targets[{i}]")
            tl = _vec(t, "labels", tb.shape[0], f"targets[{i}]").long()
            if self.num_classes is not None:
                for name, lab in ((f"preds[{i}]['labels']", pl), (f"targets[{i}]['labels']", tl)):
                    if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= self.num_classes):
                        raise ValueError(f"{name}: class indices must lie in [0, {self.num_classes}), got "
                                         f"{int(lab.min())}..{int(lab.max())}")
            td = t.get("difficult")
            td = torch.zeros(tb.shape[0], dtype=torch.bool, device=tb.device) if td is None else \
                _vec(t, "difficult", tb.shape[0], f"targets[{i}]").bool()
            self.det_boxes.append(pb)
            self.det_scores.append(ps)
            self.det_labels.append(pl)
            self.det_counts.append(torch.tensor([pb.shape[0]], device=pb.device))
            self.gt_boxes.append(tb)
            self.gt_labels.append(tl)
            self.gt_difficult.append(td)
            self.gt_counts.append(torch.tensor([tb.shape[0]], device=tb.device))

    # ------------------------------------------------------------------ compute
    def _cat(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        val = getattr(self, name)
        if isinstance(val, Tensor):  # already concatenated by a DDP sync
            return val.detach().cpu().to(dtype).reshape(-1, *shape)
        if not val:
            return torch.zeros(0, *shape, dtype=dtype)
        return torch.cat([v.detach().cpu().to(dtype).reshape(-1, *shape) for v in val])

    def compute(self) -> dict[str, Tensor]:
        """Return the AP dict described in the module docstring."""
        det_boxes = self._cat("det_boxes", (5,), torch.float64)
        det_scores = self._cat("det_scores", (), torch.float64)
        det_labels = self._cat("det_labels", (), torch.long)
        det_counts = self._cat("det_counts", (), torch.long)
        gt_boxes = self._cat("gt_boxes", (5,), torch.float64)
        gt_labels = self._cat("gt_labels", (), torch.long)
        gt_difficult = self._cat("gt_difficult", (), torch.bool)
        gt_counts = self._cat("gt_counts", (), torch.long)
        n_img = det_counts.numel()
        det_img = torch.repeat_interleave(torch.arange(n_img), det_counts)
        gt_img = torch.repeat_interleave(torch.arange(gt_counts.numel()), gt_counts)

        C = self.num_classes
        if C is None:
            C = int(max(det_labels.max() if det_labels.numel() else -1,
                        gt_labels.max() if gt_labels.numel() else -1)) + 1
        rank, best_iou, best_gt = match_detections(det_boxes, det_scores, det_labels, det_img, gt_boxes,
                                                   gt_labels, gt_img)
        counted = ~gt_difficult if self.ignore_difficult else torch.ones_like(gt_difficult)
        npos = torch.bincount(gt_labels[counted], minlength=C)[:C] if C > 0 else torch.zeros(0, dtype=torch.long)
        safe_gt = best_gt.clamp_min(0)
        cand_counted = (best_gt >= 0) & counted[safe_gt]
        order = torch.argsort(rank)  # detections in descending score order
        aps = torch.full((len(self.iou_thresholds), C), math.nan, dtype=torch.float64)
        big = torch.iinfo(torch.long).max
        for ti, thr in enumerate(self.iou_thresholds):
            passes = (best_iou > thr) if self.match == "gt" else (best_iou >= thr)
            ignored = passes & (best_gt >= 0) & ~cand_counted
            cand = passes & cand_counted
            # the highest-scoring passing detection of each gt is its TP; later ones are FPs
            first = torch.full((gt_boxes.shape[0] + 1,), big, dtype=torch.long)
            first = first.scatter_reduce(0, torch.where(cand, safe_gt, gt_boxes.shape[0]),
                                         torch.where(cand, rank, big), "amin")
            tp = cand & (rank == first[safe_gt])
            fp = ~tp & ~ignored
            for c in range(C):  # per class, vectorised over its detections
                if npos[c] == 0:
                    continue
                sel = order[(det_labels[order] == c) & ~ignored[order]]
                aps[ti, c] = average_precision(tp[sel], fp[sel], int(npos[c]), self.ap_mode)
        return self._summarise(aps)

    def _summarise(self, aps: Tensor) -> dict[str, Tensor]:
        def mean(row: Tensor) -> Tensor:
            ok = ~torch.isnan(row)
            return row[ok].mean() if ok.any() else torch.tensor(math.nan, dtype=torch.float64)

        out: dict[str, Tensor] = {"map": mean(aps[0])}
        for ti, thr in enumerate(self.iou_thresholds):
            pct = round(thr * 100)
            if abs(thr * 100 - pct) < 1e-9 and pct % 5 == 0:
                out[f"map{pct}"] = mean(aps[ti])
        if tuple(round(t, 2) for t in self.iou_thresholds) == _COCO_THRESHOLDS:
            out["map_50_95"] = torch.stack([mean(aps[t]) for t in range(aps.shape[0])]).mean()
        names = self.class_names or [str(c) for c in range(aps.shape[1])]
        for c in range(aps.shape[1]):
            out[f"ap_{names[c] if c < len(names) else c}"] = aps[0, c]
        return out


def _boxes(d: dict[str, Tensor], key: str, where: str) -> Tensor:
    if key not in d:
        raise ValueError(f"{where}: missing key {key!r}")
    b = torch.as_tensor(d[key])
    if b.numel() == 0:
        return b.reshape(0, 5).float()
    if b.dim() != 2 or b.shape[1] != 5:
        raise ValueError(f"{where}[{key!r}]: expected (N, 5) rotated boxes, got shape {tuple(b.shape)}")
    return b.detach()


def _vec(d: dict[str, Tensor], key: str, n: int, where: str) -> Tensor:
    if key not in d:
        raise ValueError(f"{where}: missing key {key!r}")
    v = torch.as_tensor(d[key]).detach().reshape(-1)
    if v.numel() != n:
        raise ValueError(f"{where}[{key!r}]: expected {n} values (one per box), got {v.numel()}")
    return v
