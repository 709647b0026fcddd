"""Split DOTA-format images into patches, and merge patch predictions back to full images.

Split (the DOTA devkit's rules, with the differences marked *):

* Every rate ``r`` in ``--rates`` rescales the image (bilinear) and the polygons by ``r``; the scaled image is
  tiled with ``size x size`` windows at a stride of ``size - gap``. Along each axis the windows start at
  ``0, stride, 2 stride, ...`` and the last one is moved back to end at the image border (start
  ``max(0, L - size)``), so the border is covered without a partial window. A window larger than the
  remaining image is zero-padded at the bottom/right to ``size x size``.
* Patch names: ``<image>__<rate>__<x>___<y>.png`` with ``x, y`` the window's top-left corner in the scaled
  image and ``rate`` written with ``%g`` (``1``, ``0.5``, ``1.5``).
* For each object and window, ``ratio = area(polygon ∩ window) / area(polygon)`` (window
  ``[x, min(x + size, W)] x [y, min(y + size, H)]`` in continuous pixel coordinates*; the devkit uses
  ``W - 1``):

  - ``ratio == 1`` (within 1e-9): the polygon is written unchanged, shifted to the patch;
  - ``0 < ratio < 1``: the polygon is clipped to the window. A 4-vertex clip is written as is; a 5-vertex clip
    becomes 4 vertices by replacing its shortest edge with that edge's midpoint (the devkit's rule); a clip
    with 3 or with 6 or more vertices is written as its minimum-area rectangle* (the devkit drops it). The vertex order
    is rotated to best match the original polygon's order. The object keeps its ``difficult`` flag if
    ``ratio > iof_thr`` (0.7, strict as in the devkit) and gets ``difficult = 2`` otherwise
    (``--drop-below-thr`` drops those objects instead*). Clipped coordinates are not snapped to ``[1, size]``*.
  - ``ratio == 0``: not in this patch. Zero-area source polygons are skipped and reported.

* Patches without objects are written unless ``--skip-empty``. Header lines ``imagesource`` and ``gsd`` are
  copied, ``gsd`` divided by the rate*.

Merge: Task1 files ``Task1_<class>.txt`` with lines ``<patch> <score> x1 y1 ... x4 y4`` are mapped back with
``(p + (x, y)) / rate`` and reduced per full image and class with rotated NMS (IoU > 0.1 suppresses, on the
minimum-area rectangles of the polygons), writing ``Task1_<class>.txt`` with full-image names.

The window rule lives in :func:`visionkit.datamodules.obb.tiles.window_starts`; ``predict`` on full-size images
with :class:`~visionkit.datamodules.obb.tiles.LargeImages` uses it too and merges like ``merge`` below, in one
command (docs/obb.md).

Examples::

    python tools/dota_split.py split --src DOTA/train --dst dota_split/train --size 1024 --gap 200 --rates 1.0
    python tools/dota_split.py split --src DOTA/val --dst dota_ms/val --rates 0.5 1.0 1.5
    python tools/dota_split.py merge --src predictions/patches --dst predictions/full --iou-thr 0.1
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from visionkit.datamodules.obb.dota import IMAGE_SUFFIXES, read_dota_txt, read_task1, write_dota_txt, write_task1
from visionkit.datamodules.obb.tiles import scaled_size, window_starts
from visionkit.errors import DataError
from visionkit.io import atomic_open

PATCH_RE = re.compile(r"^(?P<name>.+)__(?P<rate>[0-9.eE+-]+)__(?P<x>-?\d+)___(?P<y>-?\d+)$")


# ============================================================================ split
def patch_name(image: str, rate: float, x: int, y: int) -> str:
    """``<image>__<rate>__<x>___<y>`` (rate formatted with ``%g``)."""
    return f"{image}__{rate:g}__{x}___{y}"


def parse_patch_name(name: str) -> tuple[str, float, int, int]:
    """Inverse of :func:`patch_name` -> ``(image, rate, x, y)``."""
    m = PATCH_RE.match(Path(name).stem if name.endswith(IMAGE_SUFFIXES) else name)
    if m is None:
        raise ValueError(f"{name!r} is not a patch name '<image>__<rate>__<x>___<y>'")
    return m["name"], float(m["rate"]), int(m["x"]), int(m["y"])


def _poly5_to_4(p: np.ndarray) -> np.ndarray:
    """Replace the shortest edge of a pentagon ``(5, 2)`` with its midpoint -> ``(4, 2)``."""
    edges = np.linalg.norm(p - np.roll(p, -1, 0), axis=1)
    k = int(np.argmin(edges))
    pts = list(p)
    pts[k] = (p[k] + p[(k + 1) % 5]) / 2
    del pts[(k + 1) % 5]
    return np.asarray(pts)


def _signed_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _min_area_rect(p: np.ndarray) -> np.ndarray:
    """Minimum-area rectangle ``(4, 2)`` of a convex polygon ``(K, 2)`` (a side lies on a hull edge)."""
    best, best_area = None, np.inf
    for i in range(len(p)):
        e = p[(i + 1) % len(p)] - p[i]
        n = np.linalg.norm(e)
        if n == 0:
            continue
        u = e / n
        v = np.array([-u[1], u[0]])
        a, b = p @ u, p @ v
        area = np.ptp(a) * np.ptp(b)
        if area < best_area:
            best_area = area
            best = np.array([u * a.min() + v * b.min(), u * a.max() + v * b.min(), u * a.max() + v * b.max(),
                             u * a.min() + v * b.max()])
    return best


def _best_order(clip: np.ndarray, orig: np.ndarray) -> np.ndarray:
    """Cyclic shift of ``clip (4, 2)`` closest to ``orig (4, 2)`` (sum of corner distances)."""
    shifts = np.stack([np.roll(clip, -k, 0) for k in range(4)])  # (4, 4, 2)
    d = np.linalg.norm(shifts - orig[None], axis=-1).sum(1)
    return shifts[int(np.argmin(d))]


def split_objects(polys: np.ndarray, difficult: np.ndarray, window: tuple[float, float, float, float],
                  iof_thr: float = 0.7, drop_below_thr: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Objects of one window, with the rules of the module docstring.

    Args:
        polys: ``(N, 8)`` polygons in the (scaled) image.
        difficult: ``(N,)`` int difficulty levels.
        window: ``(x0, y0, x1, y1)``.
        iof_thr: objects cut to ``ratio <= iof_thr`` get ``difficult = 2`` (or are dropped).
        drop_below_thr: drop instead of marking.

    Returns:
        ``(polys (K, 8) in window coordinates, difficult (K,), index (K,) into the input)``.
    """
    import shapely

    x0, y0, x1, y1 = window
    n = polys.shape[0]
    if n == 0:
        return np.zeros((0, 8)), np.zeros(0, np.int64), np.zeros(0, np.int64)
    xs, ys = polys[:, 0::2], polys[:, 1::2]
    cand = np.nonzero((xs.max(1) > x0) & (xs.min(1) < x1) & (ys.max(1) > y0) & (ys.min(1) < y1))[0]
    out_p, out_d, out_i = [], [], []
    if cand.size:
        geoms = shapely.polygons(polys[cand].reshape(-1, 4, 2))
        geoms = shapely.make_valid(geoms)  # self-intersecting annotations become valid (multi)polygons
        box = shapely.box(x0, y0, x1, y1)
        area = shapely.area(geoms)
        inter = shapely.intersection(geoms, box)
        ratio = np.where(area > 0, shapely.area(inter) / np.where(area > 0, area, 1), 0.0)
        for j, k in enumerate(cand):  # per object of this window (vectorised geometry above)
            r = ratio[j]
            if r <= 0:
                continue
            if r >= 1 - 1e-9:
                out_p.append(polys[k])
                out_d.append(difficult[k])
                out_i.append(k)
                continue
            if r <= iof_thr and drop_below_thr:
                continue
            g = inter[j]
            if g.geom_type != "Polygon":  # a clip in several pieces: take its convex hull
                g = g.convex_hull
            ring = np.asarray(g.exterior.coords)[:-1]
            if len(ring) < 3:
                continue
            if len(ring) == 3:  # a clipped corner: its enclosing rectangle keeps the box format
                ring = _min_area_rect(ring)
            elif len(ring) == 5:
                ring = _poly5_to_4(ring)
            elif len(ring) > 5:
                ring = _min_area_rect(np.asarray(shapely.convex_hull(g).exterior.coords)[:-1])
            orig = polys[k].reshape(4, 2)
            if _signed_area(ring) * _signed_area(orig) < 0:  # same turning direction as the annotation
                ring = ring[::-1]
            ring = _best_order(ring, orig)
            out_p.append(ring.reshape(8))
            out_d.append(difficult[k] if r > iof_thr else 2)
            out_i.append(k)
    if not out_p:
        return np.zeros((0, 8)), np.zeros(0, np.int64), np.zeros(0, np.int64)
    P = np.asarray(out_p, np.float64)
    P[:, 0::2] -= x0
    P[:, 1::2] -= y0
    return P, np.asarray(out_d, np.int64), np.asarray(out_i, np.int64)


def split_image(
    image_path: Path,
    label_path: Path | None,
    dst: Path,
    size: int = 1024,
    gap: int = 200,
    rates: Sequence[float] = (1.0,),
    iof_thr: float = 0.7,
    drop_below_thr: bool = False,
    skip_empty: bool = False,
    classes: Sequence[str] | None = None,
) -> list[str]:
    """Split one image (and its DOTA label file) into ``dst/images`` and ``dst/labelTxt``.

    Returns:
        names of the written patches.
    """
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # DOTA v2.0 has images of 20000 x 20000 pixels
    ann = None
    if label_path is not None:
        ann = read_dota_txt(label_path, classes, degenerate="skip")
    with Image.open(image_path) as im:
        im = im.convert("RGB")
        W, H = im.size
        names = []
        for rate in rates:
            sh, sw = scaled_size(H, W, rate)
            scaled = im if (sw, sh) == (W, H) else im.resize((sw, sh), Image.BILINEAR)
            arr = np.asarray(scaled)
            polys = ann["polys"] * rate if ann is not None else None
            for y in window_starts(sh, size, gap):
                for x in window_starts(sw, size, gap):
                    win = (x, y, min(x + size, sw), min(y + size, sh))
                    name = patch_name(image_path.stem, rate, x, y)
                    if ann is not None:
                        p, d, idx = split_objects(polys, ann["difficult_level"], win, iof_thr, drop_below_thr)
                        if skip_empty and p.shape[0] == 0:
                            continue
                        meta = dict(ann["meta"])
                        if meta.get("gsd") is not None:
                            meta["gsd"] = meta["gsd"] / rate
                        write_dota_txt(dst / "labelTxt" / f"{name}.txt", p, [ann["labels"][i] for i in idx], d,
                                       meta)
                    patch = np.zeros((size, size, 3), np.uint8)
                    crop = arr[y:y + size, x:x + size]
                    patch[:crop.shape[0], :crop.shape[1]] = crop
                    out = dst / "images" / f"{name}.png"
                    with atomic_open(out, "wb") as f:
                        Image.fromarray(patch).save(f, format="PNG")
                    names.append(name)
    return names


def split_folder(src: Path, dst: Path, size: int = 1024, gap: int = 200, rates: Sequence[float] = (1.0,),
                 iof_thr: float = 0.7, drop_below_thr: bool = False, skip_empty: bool = False,
                 classes: Sequence[str] | None = None) -> int:
    """Split ``src/images`` (+ ``src/labelTxt`` if present) into ``dst``; returns the number of patches."""
    img_dir, lab_dir = src / "images", src / "labelTxt"
    if not img_dir.is_dir():
        raise FileNotFoundError(f"--src: {img_dir} does not exist")
    n = 0
    for img in sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        lab = lab_dir / f"{img.stem}.txt" if lab_dir.is_dir() else None
        if lab is not None and not lab.exists():
            raise FileNotFoundError(f"--src: no label file {lab} for {img}")
        n += len(split_image(img, lab, dst, size, gap, rates, iof_thr, drop_below_thr, skip_empty, classes))
    return n


# ============================================================================ merge
def merge_detections(names: Sequence[str], scores: np.ndarray, polys: np.ndarray, labels: np.ndarray | None = None,
                     iou_thr: float = 0.1) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Map patch detections to full images and apply rotated NMS per image and label.

    Args:
        names: patch name of each detection.
        scores: ``(N,)``; polys ``(N, 8)`` in patch coordinates; labels ``(N,)`` (default all 0).
        iou_thr: NMS threshold (IoU > thr suppresses).

    Returns:
        ``(image names, scores, polys in full-image coordinates, labels)`` of the kept detections, sorted by
        image then descending score.
    """
    from visionkit.ops.rotated_boxes import batched_nms_rotated, poly2obb

    labels = np.zeros(len(names), np.int64) if labels is None else np.asarray(labels, np.int64)
    parsed = [parse_patch_name(nm) for nm in names]
    images = [p[0] for p in parsed]
    rate = np.array([p[1] for p in parsed], np.float64).reshape(-1, 1)
    off = np.array([[p[2], p[3]] for p in parsed], np.float64).reshape(-1, 2)
    full = (polys.reshape(-1, 4, 2) + off[:, None, :]) / rate[:, :, None]
    full = full.reshape(-1, 8)
    if full.shape[0] == 0:
        return [], np.zeros(0), np.zeros((0, 8)), np.zeros(0, np.int64)
    uniq = {nm: i for i, nm in enumerate(sorted(set(images)))}
    img_idx = np.array([uniq[nm] for nm in images], np.int64)
    group = torch.from_numpy(img_idx * (int(labels.max()) + 1) + labels)
    boxes = poly2obb(torch.from_numpy(full), version="le90")
    keep = batched_nms_rotated(boxes, torch.from_numpy(scores), group, iou_thr).numpy()
    order = np.lexsort((-scores[keep], img_idx[keep]))
    keep = keep[order]
    return [images[k] for k in keep], scores[keep], full[keep], labels[keep]


def merge_folder(src: Path, dst: Path, iou_thr: float = 0.1) -> int:
    """Merge every ``src/Task1_*.txt`` into ``dst/Task1_*.txt``; returns the number of kept detections."""
    files = sorted(src.glob("Task1_*.txt"))
    if not files:
        raise FileNotFoundError(f"--src: no Task1_*.txt files in {src}")
    total = 0
    for path in files:
        names, scores, polys = read_task1(path)
        try:
            m_names, m_scores, m_polys, _ = merge_detections(names, scores, polys, None, iou_thr)
        except ValueError as e:
            raise DataError(f"{path}: {e}") from e
        write_task1(dst / path.name, m_names, m_scores, m_polys)
        total += len(m_names)
    return total


# ============================================================================ CLI
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("split", help="split images (+ labelTxt) into patches")
    sp.add_argument("--src", type=Path, required=True, help="folder with images/ and optionally labelTxt/")
    sp.add_argument("--dst", type=Path, required=True, help="output folder (images/ and labelTxt/)")
    sp.add_argument("--size", type=int, default=1024)
    sp.add_argument("--gap", type=int, default=200)
    sp.add_argument("--rates", type=float, nargs="+", default=[1.0])
    sp.add_argument("--iof-thr", type=float, default=0.7)
    sp.add_argument("--drop-below-thr", action="store_true", help="drop cut objects instead of difficult=2")
    sp.add_argument("--skip-empty", action="store_true", help="do not write patches without objects")
    sp.add_argument("--version", choices=["v1.0", "v1.5", "v2.0"], default=None,
                    help="check class names against this DOTA version")
    mp = sub.add_parser("merge", help="merge Task1 patch predictions to full images")
    mp.add_argument("--src", type=Path, required=True, help="folder with Task1_<class>.txt of patches")
    mp.add_argument("--dst", type=Path, required=True)
    mp.add_argument("--iou-thr", type=float, default=0.1)
    args = parser.parse_args(argv)
    if args.cmd == "split":
        from visionkit.datamodules.obb.dota import DOTA_CLASSES

        classes = DOTA_CLASSES[args.version] if args.version else None
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            n = split_folder(args.src, args.dst, args.size, args.gap, args.rates, args.iof_thr,
                             args.drop_below_thr, args.skip_empty, classes)
        print(f"wrote {n} patches to {args.dst}")
    else:
        n = merge_folder(args.src, args.dst, args.iou_thr)
        print(f"kept {n} detections in {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
