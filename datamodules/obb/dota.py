"""Real oriented-detection datasets in their on-disk formats: DOTA (v1.0/v1.5/v2.0), RSAR and DIOR-R.

Files read and written here:

* DOTA ``labelTxt/<image>.txt``: optional header lines ``imagesource:<text>`` and ``gsd:<float|null>``, then one
  object per line ``x1 y1 x2 y2 x3 y3 x4 y4 class difficult`` (pixels; ``difficult`` 0/1, 2 for objects
  truncated by the patch split, missing in some releases -> 0).
* RSAR ``annfiles/<image>.txt``: the same object lines, without headers.
* DIOR-R ``Annotations/Oriented Bounding Boxes/<id>.xml``: VOC-like XML whose ``<object>`` has ``<name>``,
  ``<difficult>`` and a ``<robndbox>`` (some files: ``<bndbox>``) with the corners ``x_left_top y_left_top
  x_right_top y_right_top x_right_bottom y_right_bottom x_left_bottom y_left_bottom``.
* point labels ``<image>.txt``: one object per line ``x y class`` (pixels).
* DOTA Task1 results ``Task1_<class>.txt``: one detection per line ``<image> <score> x1 y1 ... x4 y4``.

Polygons are converted to le90 boxes ``(cx, cy, w, h, theta)`` (radians, clockwise-positive in the image) with
:func:`visionkit.ops.rotated_boxes.poly2obb` (minimum-area rectangle). Degenerate polygons (zero area or
collinear corners) are reported with their ``file:line`` and then kept or skipped, as the ``degenerate``
option says; they are never dropped silently.

Sample dict: the keys of :mod:`visionkit.datamodules.obb.synthetic` (``image``, ``boxes``, ``labels``,
``difficult``, ``points``, ``gt_boxes``, ``image_id``, ``orig_size``) plus ``point_labels`` ``(P,)`` (the
classes of ``points``; equal to ``labels`` when points are derived from the boxes) and ``scale`` (float, the
resize factor: coordinates in the sample = original pixel coordinates x ``scale``). ``boxes`` and
``gt_boxes`` are the same oriented boxes; test splits without labels give empty tensors.
"""

from __future__ import annotations

import math
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from visionkit.datamodules.base import BaseDataModule
from visionkit.datamodules.obb import transforms as T
from visionkit.datamodules.obb.augment import OBBBatchAugment, flip_rotate_batch
from visionkit.datamodules.obb.transforms import points_in_boxes
from visionkit.errors import DataError, DatasetNotFoundError
from visionkit.io import atomic_open, read_image

__all__ = [
    "DOTA_V1_0_CLASSES", "DOTA_V1_5_CLASSES", "DOTA_V2_0_CLASSES", "DOTA_CLASSES", "RSAR_CLASSES",
    "DIOR_R_CLASSES", "read_dota_txt", "write_dota_txt", "read_point_txt", "write_point_txt", "read_dior_xml",
    "read_task1", "write_task1",
    "polygon_area", "OBBImageDataset", "DOTADataset", "DOTA", "RSAR", "DIORR",
]

DOTA_V1_0_CLASSES = (
    "plane", "baseball-diamond", "bridge", "ground-track-field", "small-vehicle", "large-vehicle", "ship",
    "tennis-court", "basketball-court", "storage-tank", "soccer-ball-field", "roundabout", "harbor",
    "swimming-pool", "helicopter",
)
DOTA_V1_5_CLASSES = DOTA_V1_0_CLASSES + ("container-crane",)
DOTA_V2_0_CLASSES = DOTA_V1_5_CLASSES + ("airport", "helipad")
DOTA_CLASSES = {"v1.0": DOTA_V1_0_CLASSES, "v1.5": DOTA_V1_5_CLASSES, "v2.0": DOTA_V2_0_CLASSES}
RSAR_CLASSES = ("ship", "aircraft", "car", "tank", "bridge", "harbor")
DIOR_R_CLASSES = (
    "airplane", "airport", "baseballfield", "basketballcourt", "bridge", "chimney", "expressway-service-area",
    "expressway-toll-station", "dam", "golffield", "groundtrackfield", "harbor", "overpass", "ship", "stadium",
    "storagetank", "tenniscourt", "trainstation", "vehicle", "windmill",
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_DIOR_CORNERS = ("x_left_top", "y_left_top", "x_right_top", "y_right_top", "x_right_bottom", "y_right_bottom",
                 "x_left_bottom", "y_left_bottom")


# ============================================================================ text formats
def polygon_area(polys: np.ndarray) -> np.ndarray:
    """Unsigned shoelace area ``(N,)`` of quadrilaterals ``(N, 8)``."""
    x, y = polys[:, 0::2], polys[:, 1::2]
    return 0.5 * np.abs(np.sum(x * np.roll(y, -1, 1) - np.roll(x, -1, 1) * y, axis=1))


def _degenerate_mask(polys: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Zero-area polygons, or corners all on one line (area ~ 0 relative to the squared extent)."""
    if polys.shape[0] == 0:
        return np.zeros(0, bool)
    area = polygon_area(polys)
    ext = np.maximum(np.ptp(polys[:, 0::2], 1), np.ptp(polys[:, 1::2], 1))
    return area <= tol * np.maximum(ext**2, 1.0)


def _report_degenerate(path: Path, lines: np.ndarray, mask: np.ndarray, action: str) -> None:
    if mask.any():
        where = ", ".join(f"{path}:{int(n)}" for n in lines[mask][:20])
        more = "" if mask.sum() <= 20 else f" and {int(mask.sum()) - 20} more"
        warnings.warn(f"{int(mask.sum())} degenerate box(es) (zero area or collinear corners), {action}: "
                      f"{where}{more}", stacklevel=3)


def _difficult(text: str, where: str) -> int:
    """The difficult flag of one object; ``where`` names the file, line or element in the error."""
    try:
        return int(text)
    except ValueError as e:
        raise DataError(f"{where} must be an integer, got {text!r}") from e


def _finish(path: Path, polys: list, labels: list, difficult: list, lines: list, degenerate: str,
            warn: bool) -> dict[str, Any]:
    polys_a = np.asarray(polys, dtype=np.float64).reshape(-1, 8)
    diff_a = np.asarray(difficult, dtype=np.int64).reshape(-1)
    lines_a = np.asarray(lines, dtype=np.int64).reshape(-1)
    deg = _degenerate_mask(polys_a)
    if degenerate not in ("keep", "skip", "error"):
        raise ValueError(f"degenerate: expected 'keep', 'skip' or 'error', got {degenerate!r}")
    if degenerate == "error" and deg.any():
        raise DataError(f"{path}:{int(lines_a[deg][0])}: degenerate box (zero area or collinear corners)")
    if warn:
        _report_degenerate(path, lines_a, deg, "kept" if degenerate == "keep" else "skipped")
    degenerate_lines = lines_a[deg]
    if degenerate == "skip":
        keep = ~deg
        polys_a, diff_a, lines_a = polys_a[keep], diff_a[keep], lines_a[keep]
        labels = [lab for lab, k in zip(labels, keep) if k]
    return {"polys": polys_a, "labels": list(labels), "difficult": diff_a != 0, "difficult_level": diff_a,
            "lines": lines_a, "degenerate_lines": degenerate_lines}


def read_dota_txt(
    path: str | Path,
    classes: Sequence[str] | None = None,
    degenerate: str = "keep",
    allow_header: bool = True,
    warn: bool = True,
) -> dict[str, Any]:
    """Read a DOTA ``labelTxt`` file (or an RSAR ``annfiles`` file: ``allow_header=False``).

    Args:
        path: the text file.
        classes: allowed class names; an unknown name raises :class:`DataError` (None: accept any).
        degenerate: ``'keep'`` (default), ``'skip'`` or ``'error'`` for zero-area / collinear polygons; kept and
            skipped ones are reported in a warning listing ``file:line``.
        allow_header: accept ``imagesource:`` / ``gsd:`` lines before the objects.
        warn: emit the degenerate-box warning (datasets collect them into one report instead).

    Returns:
        dict with ``polys (N, 8)`` float64, ``labels`` list[str], ``difficult (N,)`` bool, ``difficult_level
        (N,)`` int (0/1/2 as written), ``lines (N,)`` line numbers (1-based), ``degenerate_lines`` (line numbers
        of the degenerate polygons found, kept or not) and ``meta`` (``imagesource`` str, ``gsd`` float or
        None, when present).

    Raises:
        DataError: ``"<file>:<line>: <what is wrong>"`` for malformed lines and unknown classes.
    """
    path = Path(path)
    allowed = set(classes) if classes is not None else None
    meta: dict[str, Any] = {}
    polys, labels, difficult, lines = [], [], [], []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a UTF-8 text file ({e})") from e
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        head = line.split(":", 1)[0].strip().lower()
        if ":" in line and head in ("imagesource", "gsd"):
            if not allow_header:
                raise DataError(f"{path}:{n}: header line {line!r} is not allowed in this format")
            if polys:
                raise DataError(f"{path}:{n}: header line {line!r} after object lines")
            value = line.split(":", 1)[1].strip()
            if head == "gsd":
                try:
                    meta["gsd"] = None if value.lower() in ("null", "none", "") else float(value)
                except ValueError as e:
                    raise DataError(f"{path}:{n}: gsd must be a number or null, got {value!r}") from e
            else:
                meta["imagesource"] = value
            continue
        fields = line.split()
        if len(fields) not in (9, 10):
            raise DataError(f"{path}:{n}: expected 8 coordinates + class [+ difficult], got {len(fields)} fields")
        try:
            coords = [float(v) for v in fields[:8]]
        except ValueError as e:
            raise DataError(f"{path}:{n}: coordinates must be numbers: expected 8 coordinates + class "
                            f"[+ difficult] ({e})") from e
        if not all(math.isfinite(v) for v in coords):
            raise DataError(f"{path}:{n}: non-finite coordinate")
        name = fields[8]
        if allowed is not None and name not in allowed:
            raise DataError(f"{path}:{n}: unknown class {name!r} (expected one of {sorted(allowed)})")
        polys.append(coords)
        labels.append(name)
        difficult.append(_difficult(fields[9] if len(fields) == 10 else "0", f"{path}:{n}: difficult"))
        lines.append(n)
    out = _finish(path, polys, labels, difficult, lines, degenerate, warn)
    out["meta"] = meta
    return out


def write_dota_txt(
    path: str | Path,
    polys: np.ndarray | Tensor,
    class_names: Sequence[str],
    difficult: np.ndarray | Tensor | Sequence[int] | None = None,
    meta: dict[str, Any] | None = None,
) -> None:
    """Write a DOTA ``labelTxt`` file atomically (exact float round trip).

    Args:
        path: destination.
        polys: ``(N, 8)`` corners.
        class_names: N class names (no spaces).
        difficult: N ints (0/1/2) or bools; default 0.
        meta: optional ``imagesource`` / ``gsd`` header values (``gsd=None`` writes ``null``).
    """
    polys = np.asarray(polys.detach().cpu() if isinstance(polys, Tensor) else polys, dtype=np.float64)
    polys = polys.reshape(-1, 8)
    if len(class_names) != polys.shape[0]:
        raise ValueError(f"write_dota_txt: {polys.shape[0]} polygons but {len(class_names)} class names")
    diff = np.zeros(polys.shape[0], np.int64) if difficult is None else np.asarray(
        difficult.cpu() if isinstance(difficult, Tensor) else difficult).astype(np.int64).reshape(-1)
    out = []
    for key in ("imagesource", "gsd"):
        if meta and key in meta:
            v = meta[key]
            out.append(f"{key}:{'null' if v is None else v}")
    for p, name, d in zip(polys, class_names, diff):
        if any(c.isspace() for c in name) or not name:
            raise ValueError(f"write_dota_txt: class name {name!r} must be non-empty without spaces")
        out.append(" ".join(repr(float(v)) for v in p) + f" {name} {int(d)}")
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + ("\n" if out else ""))


def read_point_txt(
    path: str | Path, classes: Sequence[str] | None = None, image_size: tuple[int, int] | None = None
) -> dict[str, Any]:
    """Read a point-label file: one ``x y class`` line per object.

    Args:
        path: the text file.
        classes: allowed class names (None: any).
        image_size: ``(H, W)``; a point outside ``[0, W] x [0, H]`` raises.

    Returns:
        dict with ``points (N, 2)`` float64 ``(x, y)``, ``labels`` list[str], ``lines (N,)``.

    Raises:
        DataError: ``"<file>:<line>: ..."`` for malformed lines, unknown classes and points outside the image.
    """
    path = Path(path)
    allowed = set(classes) if classes is not None else None
    pts, labels, lines = [], [], []
    for n, raw in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        fields = raw.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise DataError(f"{path}:{n}: expected 'x y class', got {len(fields)} fields")
        try:
            x, y = float(fields[0]), float(fields[1])
        except ValueError as e:
            raise DataError(f"{path}:{n}: coordinates must be numbers ({e})") from e
        if allowed is not None and fields[2] not in allowed:
            raise DataError(f"{path}:{n}: unknown class {fields[2]!r} (expected one of {sorted(allowed)})")
        if image_size is not None:
            H, W = image_size
            if not (0 <= x <= W and 0 <= y <= H):
                raise DataError(f"{path}:{n}: point ({x:g}, {y:g}) outside the {W}x{H} image")
        pts.append((x, y))
        labels.append(fields[2])
        lines.append(n)
    return {"points": np.asarray(pts, np.float64).reshape(-1, 2), "labels": labels,
            "lines": np.asarray(lines, np.int64)}


def write_point_txt(path: str | Path, points: np.ndarray | Tensor, class_names: Sequence[str]) -> None:
    """Write ``x y class`` lines atomically. ``points``: ``(N, 2)``."""
    pts = np.asarray(points.detach().cpu() if isinstance(points, Tensor) else points, np.float64).reshape(-1, 2)
    if len(class_names) != pts.shape[0]:
        raise ValueError(f"write_point_txt: {pts.shape[0]} points but {len(class_names)} class names")
    text = "".join(f"{float(x)!r} {float(y)!r} {c}\n" for (x, y), c in zip(pts, class_names))
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def read_task1(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read a DOTA Task1 result file ``Task1_<class>.txt`` (``<image> <score> x1 y1 ... x4 y4`` per line).

    Returns:
        ``(image names, scores (N,) float64, polys (N, 8) float64)``.

    Raises:
        DataError: ``"<file>:<line>: ..."`` for malformed lines.
    """
    path = Path(path)
    names, scores, polys = [], [], []
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        f = raw.split()
        if not f:
            continue
        if len(f) != 10:
            raise DataError(f"{path}:{n}: expected '<image> <score> x1 y1 ... x4 y4', got {len(f)} fields")
        try:
            scores.append(float(f[1]))
            polys.append([float(v) for v in f[2:]])
        except ValueError as e:
            raise DataError(f"{path}:{n}: score and coordinates must be numbers ({e})") from e
        names.append(f[0])
    return names, np.asarray(scores, np.float64), np.asarray(polys, np.float64).reshape(-1, 8)


def write_task1(path: str | Path, names: Sequence[str], scores: np.ndarray | Tensor,
                polys: np.ndarray | Tensor) -> None:
    """Write a DOTA Task1 result file atomically: ``<image> <score> x1 y1 ... x4 y4`` per detection.

    Args:
        path: destination, conventionally ``Task1_<class>.txt``.
        names: image name (file stem) of each detection.
        scores: ``(N,)``; polys ``(N, 8)`` corners in full-image pixels (scores with 6 decimals, corners with 2,
            as DOTA submissions).
    """
    scores = np.asarray(scores.detach().cpu() if isinstance(scores, Tensor) else scores, np.float64).reshape(-1)
    polys = np.asarray(polys.detach().cpu() if isinstance(polys, Tensor) else polys, np.float64).reshape(-1, 8)
    lines = [f"{nm} {float(s):.6f} " + " ".join(f"{float(v):.2f}" for v in p) for nm, s, p in zip(names, scores, polys)]
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + ("\n" if lines else ""))


def read_dior_xml(
    path: str | Path, classes: Sequence[str] | None = DIOR_R_CLASSES, degenerate: str = "keep", warn: bool = True
) -> dict[str, Any]:
    """Read a DIOR-R oriented-box XML file.

    Class names are lower-cased (the files mix cases, e.g. ``Expressway-Service-area``). ``lines`` holds the
    1-based index of the ``<object>`` element (XML has no useful line numbers), and errors name it as
    ``file:object <k>``.

    Returns:
        the dict of :func:`read_dota_txt`, with ``meta`` holding ``width``/``height`` when ``<size>`` is given.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise DataError(f"{path}:{e.position[0]}: malformed XML ({e})") from e
    allowed = set(classes) if classes is not None else None
    meta: dict[str, Any] = {}
    size = root.find("size")
    if size is not None:
        for k in ("width", "height"):
            el = size.find(k)
            if el is not None and el.text:
                meta[k] = int(float(el.text))
    polys, labels, difficult, lines = [], [], [], []
    for k, obj in enumerate(root.findall("object"), start=1):
        where = f"{path}:object {k}"
        name_el = obj.find("name")
        if name_el is None or not (name_el.text or "").strip():
            raise DataError(f"{where}: missing <name>")
        name = name_el.text.strip().lower()
        if allowed is not None and name not in allowed:
            raise DataError(f"{where}: unknown class {name!r} (expected one of {sorted(allowed)})")
        box = obj.find("robndbox")
        if box is None or box.find("x_left_top") is None:
            box = obj.find("bndbox")
        if box is None:
            raise DataError(f"{where}: no <robndbox> or <bndbox> element")
        coords = []
        for tag in _DIOR_CORNERS:
            el = box.find(tag)
            if el is None or el.text is None:
                raise DataError(f"{where}: missing <{tag}>")
            try:
                coords.append(float(el.text))
            except ValueError as e:
                raise DataError(f"{where}: <{tag}> must be a number, got {el.text!r}") from e
        d_el = obj.find("difficult")
        polys.append(coords)
        labels.append(name)
        difficult.append(_difficult(d_el.text if d_el is not None and d_el.text else "0", f"{where}: <difficult>"))
        lines.append(k)
    out = _finish(path, polys, labels, difficult, lines, degenerate, warn)
    out["meta"] = meta
    return out


# ============================================================================ dataset
def _find_image(folder: Path, stem: str) -> Path | None:
    for suf in IMAGE_SUFFIXES:
        for cand in (folder / f"{stem}{suf}", folder / f"{stem}{suf.upper()}"):
            if cand.exists():
                return cand
    return None


def _load_image(path: Path) -> Tensor:
    return read_image(path)  # uint8 (C, H, W); float on the device (BaseDataModule.uint8_image_keys)


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.height, im.width


class OBBImageDataset(Dataset):
    """Images with oriented-box annotations read by ``reader``; polygons become le90 boxes.

    Args:
        items: ``(image_path, annotation_path or None)`` pairs (None: an unlabelled image).
        reader: ``reader(path) -> dict`` like :func:`read_dota_txt` (already bound to classes/degenerate).
        classes: class names in label order.
        image_size: resize so the longer side is ``image_size`` and pad to a square (None: keep the size).
        point_mode: points derived from the boxes: ``'center'`` or ``'random'`` (uniform in the box; fixed
            per image and object by ``point_seed``).
        point_reader: ``point_reader(image_path) -> dict`` like :func:`read_point_txt` or None; when given,
            ``points``/``point_labels`` come from it instead.
        point_seed: seed of the random points.
    """

    def __init__(
        self,
        items: Sequence[tuple[Path, Path | None]],
        reader: Callable[[Path], dict[str, Any]],
        classes: Sequence[str],
        image_size: int | None = None,
        point_mode: str = "center",
        point_reader: Callable[[Path], dict[str, Any]] | None = None,
        point_seed: int = 0,
    ) -> None:
        if point_mode not in ("center", "random"):
            raise ValueError(f"point_mode: expected 'center' or 'random', got {point_mode!r}")
        from visionkit.ops.rotated_boxes import poly2obb

        self.items = list(items)
        self.classes = list(classes)
        self.cls_index = {c: i for i, c in enumerate(self.classes)}
        self.image_size, self.point_mode, self.point_reader, self.point_seed = image_size, point_mode, point_reader, \
            point_seed
        self.annotations: list[dict[str, Any]] = []
        degenerate: list[str] = []
        for _img, ann_path in self.items:
            if ann_path is None:
                self.annotations.append({"boxes": torch.zeros(0, 5), "labels": torch.zeros(0, dtype=torch.long),
                                         "difficult": torch.zeros(0, dtype=torch.bool)})
                continue
            ann = reader(ann_path)
            degenerate += [f"{ann_path}:{n}" for n in ann["degenerate_lines"]]
            polys = torch.from_numpy(ann["polys"])
            boxes = poly2obb(polys, version="le90").float() if polys.shape[0] else torch.zeros(0, 5)
            self.annotations.append({
                "boxes": boxes,
                "labels": torch.tensor([self.cls_index[c] for c in ann["labels"]], dtype=torch.long),
                "difficult": torch.from_numpy(ann["difficult"]).bool(),
            })
        #: number of degenerate polygons found in the annotation files (kept or skipped per the reader)
        self.num_degenerate = len(degenerate)
        self.degenerate = degenerate
        if degenerate:
            warnings.warn(f"{len(degenerate)} degenerate box(es) (zero area or collinear corners) in "
                          f"{len(self.items)} annotation files: " + ", ".join(degenerate[:20])
                          + ("" if len(degenerate) <= 20 else f" and {len(degenerate) - 20} more"), stacklevel=2)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        img_path, _ = self.items[i]
        image = _load_image(img_path)
        H, W = image.shape[-2:]
        ann = self.annotations[i]
        boxes = ann["boxes"].clone()
        if self.point_reader is not None:
            pr = self.point_reader(img_path)
            points = torch.from_numpy(pr["points"]).float()
            point_labels = torch.tensor([self.cls_index[c] for c in pr["labels"]], dtype=torch.long)
        else:
            if self.point_mode == "center":
                points = boxes[:, :2].clone()
            else:
                g = torch.Generator().manual_seed(self.point_seed * 1_000_003 + i)
                offsets = torch.rand(boxes.shape[0], 2, generator=g, dtype=torch.float64) - 0.5
                points = points_in_boxes(boxes.double(), offsets).float()
            point_labels = ann["labels"].clone()
        scale = 1.0
        if self.image_size is not None:
            image, boxes, points, scale = T.resize_pad(image, self.image_size, boxes, points)
        return {
            "image": image,
            "boxes": boxes,
            "labels": ann["labels"].clone(),
            "difficult": ann["difficult"].clone(),
            "points": points,
            "point_labels": point_labels,
            "gt_boxes": boxes.clone(),
            "image_id": img_path.stem,
            "orig_size": torch.tensor([H, W]),
            "scale": float(scale),
        }


class DOTADataset(OBBImageDataset):
    """One DOTA split folder: ``<split_dir>/images/*.png`` with ``<split_dir>/labelTxt/<stem>.txt`` (a split
    without ``labelTxt``, like ``test``, gives empty targets).

    Args:
        split_dir: e.g. ``data/dota_split/train``.
        classes: class list (default DOTA v1.0); unknown names in the files raise :class:`DataError`.
        degenerate: ``'keep'``, ``'skip'`` or ``'error'`` (always reported).
        **kwargs: :class:`OBBImageDataset` arguments (``image_size``, ``point_mode``, ...).
    """

    def __init__(self, split_dir: str | Path, classes: Sequence[str] = DOTA_V1_0_CLASSES, degenerate: str = "skip",
                 **kwargs: Any) -> None:
        split_dir = Path(split_dir)
        labels = split_dir / "labelTxt"
        items = _pair_folder(split_dir / "images", labels if labels.is_dir() else None, "split_dir")
        super().__init__(items, lambda p: read_dota_txt(p, classes, degenerate=degenerate, warn=False), classes,
                         **kwargs)


class PointFileReader:
    """``reader(image_path) -> read_point_txt(<folder>/<image stem>.txt, classes, image size)`` (picklable, so
    it works in spawned DataLoader workers)."""

    def __init__(self, folder: str | Path, classes: Sequence[str]) -> None:
        self.folder, self.classes = Path(folder), tuple(classes)

    def __call__(self, img_path: Path) -> dict[str, Any]:
        p = self.folder / f"{img_path.stem}.txt"
        if not p.exists():
            raise DatasetNotFoundError(f"data.init_args.point_dir: no point file {p} for image {img_path}")
        return read_point_txt(p, self.classes, _image_size(img_path))


# ============================================================================ datamodules
class _FolderOBB(BaseDataModule):
    """Shared machinery of the real-data datamodules (splits, resizing, flips/rotations, point labels)."""

    uint8_image_keys = ("image",)

    classes: tuple[str, ...] = ()

    def __init__(
        self,
        root: str = "data",
        image_size: int | None = 1024,
        hflip_prob: float = 0.5,
        vflip_prob: float = 0.5,
        rot90_prob: float = 0.5,
        augment_rotate: float = 0.0,
        augment_max_angle: float = 180.0,
        augment_min_visible: float = 0.6,
        augment_jitter: float = 0.0,
        degenerate: Literal["keep", "skip", "error"] = "skip",
        point_mode: Literal["center", "random"] = "center",
        point_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if degenerate not in ("keep", "skip", "error"):
            raise ValueError(f"data.init_args.degenerate: expected 'keep', 'skip' or 'error', got {degenerate!r}")
        if point_mode not in ("center", "random"):
            raise ValueError(f"data.init_args.point_mode: expected 'center' or 'random', got {point_mode!r}")
        self.root, self.image_size = root, image_size
        self.hflip_prob, self.vflip_prob, self.rot90_prob = hflip_prob, vflip_prob, rot90_prob
        self.batch_augment = OBBBatchAugment.from_options(augment_rotate, augment_max_angle, augment_min_visible,
                                                          augment_jitter)
        self.degenerate, self.point_mode, self.point_dir = degenerate, point_mode, point_dir
        self.class_names = list(self.classes)
        self.num_classes = len(self.classes)

    # subclasses: list (image, annotation) pairs of a split, and the annotation reader
    def split_items(self, split: str) -> list[tuple[Path, Path | None]]:
        raise NotImplementedError

    def reader(self, path: Path) -> dict[str, Any]:
        return read_dota_txt(path, self.classes, degenerate=self.degenerate, warn=False)

    def point_folder(self, split: str) -> Path:
        return Path(self.root) / split / str(self.point_dir)

    def _point_reader(self, split: str) -> Callable[[Path], dict[str, Any]] | None:
        if self.point_dir is None:
            return None
        folder = self.point_folder(split)
        if not folder.is_dir():
            raise DatasetNotFoundError(f"data.init_args.point_dir: {folder} does not exist")
        return PointFileReader(folder, self.classes)

    def make_dataset(self, split: str) -> OBBImageDataset:
        return OBBImageDataset(self.split_items(split), self.reader, self.classes, self.image_size,
                               point_mode=self.point_mode, point_reader=self._point_reader(split),
                               point_seed=self.seed)

    def setup(self, stage: str | None = None) -> None:
        self.check_path(self.root, "data.init_args.root")
        if stage in (None, "fit") and self.train_dataset is None:
            self.train_dataset = self.make_dataset("train")
        if stage in (None, "fit", "validate") and self.val_dataset is None:
            self.val_dataset = self.make_dataset("val")
        if stage in (None, "test") and self.test_dataset is None:
            self.test_dataset = self.make_dataset("test")
        if stage == "predict" and self.predict_dataset is None:
            self.predict_dataset = self.make_dataset("test")

    def augment(self, batch: dict[str, Any]) -> dict[str, Any]:
        if max(self.hflip_prob, self.vflip_prob, self.rot90_prob) > 0:
            if batch["image"].shape[-1] != batch["image"].shape[-2]:
                raise ValueError("flip/rotation augmentation needs square images: set data.init_args.image_size")
            batch = flip_rotate_batch(batch, hflip_prob=self.hflip_prob, vflip_prob=self.vflip_prob,
                                      rot90_prob=self.rot90_prob)
        return self.batch_augment(batch) if self.batch_augment.active else batch


def _pair_folder(images: Path, labels: Path | None, key: str) -> list[tuple[Path, Path | None]]:
    if not images.is_dir():
        raise DatasetNotFoundError(f"{key}: {images} does not exist")
    items = []
    for img in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        ann = None
        if labels is not None:
            ann = labels / f"{img.stem}.txt"
            if not ann.exists():
                raise DatasetNotFoundError(f"{key}: no annotation file {ann} for image {img}")
        items.append((img, ann))
    if labels is not None:  # an annotation without its image would be dropped without a word
        stems = {img.stem for img, _ in items}
        orphans = sorted(p for p in labels.glob("*.txt") if p.stem not in stems)
        if orphans:
            raise DataError(f"{key}: annotation file {orphans[0]} has no image {images / orphans[0].stem}.* "
                            f"({len(orphans)} annotation files without an image)")
    return items


class DOTA(_FolderOBB):
    """DOTA v1.0 / v1.5 / v2.0 patches as written by ``tools/dota_split.py``.

    Layout: ``<root>/{train,val,test}/images/*.png`` and ``<root>/{train,val}/labelTxt/*.txt`` (``test`` has no
    labels; a ``labelTxt`` folder there is used when present). Point labels (optional): ``<root>/<split>/
    <point_dir>/<image>.txt`` with ``x y class`` lines; otherwise points are derived from the boxes.

    Args:
        root: folder holding the split folders.
        version: ``'v1.0'``, ``'v1.5'`` or ``'v2.0'`` (class list).
        image_size: resize the longer side to this and pad square (None: native size, e.g. 1024 patches).
        hflip_prob, vflip_prob, rot90_prob: training augmentation probabilities (a turn is 1-3 quarters).
        augment_rotate, augment_max_angle, augment_min_visible, augment_jitter: turns by any angle and
            photometric jitter on the device, as in :class:`~visionkit.datamodules.obb.synthetic.SyntheticOBB`.
        degenerate: ``'keep'``, ``'skip'`` or ``'error'`` for degenerate polygons (always reported).
        point_mode: ``'center'`` or ``'random'`` points derived from the boxes.
        point_dir: sub-folder of point-label files (None: derive points from the boxes).
        **kwargs: :class:`~visionkit.datamodules.base.BaseDataModule` arguments.
    """

    def __init__(self, root: str = "data/dota_split", version: str = "v1.0", **kwargs: Any) -> None:
        if version not in DOTA_CLASSES:
            raise ValueError(f"data.init_args.version: expected one of {sorted(DOTA_CLASSES)}, got {version!r}")
        self.classes = DOTA_CLASSES[version]
        self.version = version
        super().__init__(root=root, **kwargs)

    def split_items(self, split: str) -> list[tuple[Path, Path | None]]:
        base = Path(self.root) / split
        labels = base / "labelTxt"
        if split != "test" and not labels.is_dir():
            raise DatasetNotFoundError(f"data.init_args.root: {labels} does not exist")
        return _pair_folder(base / "images", labels if labels.is_dir() else None, "data.init_args.root")


class RSAR(_FolderOBB):
    """RSAR (rotated SAR objects): ``<root>/{train,val,test}/images`` + ``annfiles/*.txt`` (DOTA lines, no
    headers), classes ship, aircraft, car, tank, bridge, harbor. Other arguments as :class:`DOTA`.
    """

    classes = RSAR_CLASSES

    def __init__(self, root: str = "data/RSAR", image_size: int | None = 800, **kwargs: Any) -> None:
        super().__init__(root=root, image_size=image_size, **kwargs)

    def reader(self, path: Path) -> dict[str, Any]:
        return read_dota_txt(path, self.classes, degenerate=self.degenerate, allow_header=False, warn=False)

    def split_items(self, split: str) -> list[tuple[Path, Path | None]]:
        base = Path(self.root) / split
        labels = base / "annfiles"
        return _pair_folder(base / "images", labels if labels.is_dir() else None, "data.init_args.root")


class DIORR(_FolderOBB):
    """DIOR-R: ``<root>/JPEGImages-trainval/*.jpg``, ``JPEGImages-test/*.jpg``, ``Annotations/Oriented Bounding
    Boxes/<id>.xml`` and ``ImageSets/Main/{train,val,test}.txt`` (one image id per line); 20 classes.
    Point files (optional) live in ``<root>/<point_dir>/<id>.txt``. Other arguments as :class:`DOTA`.
    """

    classes = DIOR_R_CLASSES

    def __init__(self, root: str = "data/DIOR-R", image_size: int | None = 800, **kwargs: Any) -> None:
        super().__init__(root=root, image_size=image_size, **kwargs)

    def reader(self, path: Path) -> dict[str, Any]:
        return read_dior_xml(path, self.classes, degenerate=self.degenerate, warn=False)

    def point_folder(self, split: str) -> Path:
        return Path(self.root) / str(self.point_dir)

    def split_items(self, split: str) -> list[tuple[Path, Path | None]]:
        root = Path(self.root)
        ids_file = root / "ImageSets" / "Main" / f"{split}.txt"
        if not ids_file.exists():
            raise DatasetNotFoundError(f"data.init_args.root: {ids_file} does not exist")
        ann_dir = root / "Annotations" / "Oriented Bounding Boxes"
        img_dirs = [root / "JPEGImages-test", root / "JPEGImages-trainval"] if split == "test" else \
            [root / "JPEGImages-trainval", root / "JPEGImages-test"]
        items = []
        for n, raw in enumerate(ids_file.read_text().splitlines(), start=1):
            stem = raw.strip()
            if not stem:
                continue
            img = next((p for d in img_dirs if (p := _find_image(d, stem)) is not None), None)
            if img is None:
                raise DataError(f"{ids_file}:{n}: no image {stem}.jpg in {img_dirs[0]} or {img_dirs[1]}")
            ann = ann_dir / f"{stem}.xml"
            if not ann.exists():
                raise DataError(f"{ids_file}:{n}: no annotation {ann}")
            items.append((img, ann))
        return items
