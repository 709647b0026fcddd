"""Detection on full-size images by sliding windows: batched tiles, detections mapped back, merged per class.

The windows come with the sample (:class:`~visionkit.datamodules.obb.tiles.LargeImages`, the split tool's rule);
tiles are cut on the device, ``tile_batch`` at a time, zero-padded at the bottom/right to ``size x size`` like the
split tool's patches, and passed to a patch detector. A detection ``(cx, cy, w, h, theta)`` of the tile at
``(x, y)`` of the view resized by ``r`` becomes ``((cx + x) / r, (cy + y) / r, w / r, h / r, theta)`` in the full
image; all detections of an image (all tiles, all rates) are then reduced by rotated NMS per class with
``iou_thr`` (IoU above it suppresses), as the merge of ``tools/dota_split.py`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from visionkit.io import image_to_float
from visionkit.ops.rotated_boxes import batched_nms_rotated

__all__ = ["extract_tiles", "merge_detections", "predict_large_image"]

Detector = Callable[[Tensor], list[dict[str, Tensor]]]


def extract_tiles(image: Tensor, windows: Tensor, size: int) -> Tensor:
    """Cut ``size x size`` tiles at ``windows`` from one image, zero beyond its bottom/right border.

    Args:
        image: ``(C, H, W)`` (any dtype).
        windows: ``(T, 2)`` long top-left corners ``(x, y)``, inside the image.
        size: tile side.

    Returns:
        ``(T, C, size, size)`` in the dtype of ``image``.
    """
    C, H, W = image.shape
    windows = windows.to(image.device).long()
    if windows.numel() and (int(windows.min()) < 0 or int(windows[:, 0].max()) >= max(W, 1)
                            or int(windows[:, 1].max()) >= max(H, 1)):
        raise ValueError(f"extract_tiles: windows outside the {H}x{W} image")
    ph = max(0, int(windows[:, 1].max()) + size - H) if windows.numel() else 0
    pw = max(0, int(windows[:, 0].max()) + size - W) if windows.numel() else 0
    img = torch.nn.functional.pad(image, (0, pw, 0, ph)) if ph or pw else image
    ar = torch.arange(size, device=image.device)
    rows = windows[:, 1:2] + ar  # (T, size)
    cols = windows[:, 0:1] + ar  # (T, size)
    return img[:, rows[:, :, None], cols[:, None, :]].permute(1, 0, 2, 3)  # (C, T, s, s) -> (T, C, s, s)


def merge_detections(boxes: Tensor, scores: Tensor, labels: Tensor, iou_thr: float = 0.1) -> dict[str, Tensor]:
    """Rotated NMS per class over the detections of one image: ``boxes (N, 5)``, ``scores (N,)``, ``labels (N,)``
    -> the kept ones, by decreasing score."""
    if boxes.shape[0] == 0:
        return {"boxes": boxes, "scores": scores, "labels": labels}
    keep = batched_nms_rotated(boxes, scores, labels, iou_thr)
    keep = keep[scores[keep].argsort(descending=True, stable=True)]
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}


def predict_large_image(detect: Detector, views: Sequence[Tensor], rates: Sequence[float],
                        windows: Sequence[Tensor], size: int, tile_batch: int = 8,
                        iou_thr: float = 0.1) -> dict[str, Tensor]:
    """Detections of one full-size image from its tiles.

    Args:
        detect: patch detector, ``(T, 3, size, size)`` float in [0, 1] -> per tile ``{"boxes" (K, 5), "scores"
            (K,), "labels" (K,)}`` in tile pixels (e.g. ``RotatedFCOS.predict``).
        views: per rate the resized image ``(3, h_r, w_r)``, uint8 (0..255) or float in [0, 1].
        rates: the resize factors of the views.
        windows: per rate ``(T_r, 2)`` top-left corners ``(x, y)`` in the view.
        size: tile side.
        tile_batch: tiles per call of ``detect``.
        iou_thr: NMS threshold of the merge.

    Returns:
        ``boxes (K, 5)`` le90 in full-image pixels, ``scores (K,)``, ``labels (K,)``, by decreasing score.
    """
    if tile_batch < 1:
        raise ValueError(f"model.init_args.tile_batch: expected >= 1, got {tile_batch}")
    boxes, scores, labels = [], [], []
    for view, rate, win in zip(views, rates, windows):  # a few rates
        win = win.to(view.device).long()
        for start in range(0, win.shape[0], tile_batch):  # batches of tiles; each batch is one detector call
            w = win[start:start + tile_batch]
            tiles = extract_tiles(view, w, size)
            tiles = image_to_float(tiles).float()
            dets = detect(tiles)
            n = torch.tensor([len(d["boxes"]) for d in dets], device=view.device)
            if int(n.sum()) == 0:
                continue
            b = torch.cat([d["boxes"] for d in dets])  # (K, 5) tile pixels
            off = w.repeat_interleave(n, 0).to(b.dtype)  # (K, 2)
            b = torch.cat([(b[:, :2] + off) / rate, b[:, 2:4] / rate, b[:, 4:]], 1)
            boxes.append(b)
            scores.append(torch.cat([d["scores"] for d in dets]))
            labels.append(torch.cat([d["labels"] for d in dets]))
    if not boxes:
        dev = views[0].device if len(views) else None
        return {"boxes": torch.zeros(0, 5, device=dev), "scores": torch.zeros(0, device=dev),
                "labels": torch.zeros(0, dtype=torch.long, device=dev)}
    return merge_detections(torch.cat(boxes), torch.cat(scores), torch.cat(labels), iou_thr)
