"""tools/dota_split.py: patch grid, object rules, names, and the split -> merge round trip."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from shapely.geometry import Polygon, box

from visionkit.datamodules.obb.dota import read_dota_txt, write_dota_txt

torch.set_num_threads(1)  # the machine is shared: no thread oversubscription

TOOL = Path(__file__).resolve().parents[3] / "tools" / "dota_split.py"
spec = importlib.util.spec_from_file_location("dota_split", TOOL)
ds = importlib.util.module_from_spec(spec)
sys.modules["dota_split"] = ds
spec.loader.exec_module(ds)


def test_window_starts_cover_and_end_at_border():
    assert ds.window_starts(300, 128, 28) == [0, 100, 172]
    assert ds.window_starts(100, 128, 28) == [0]  # smaller than a window: one padded patch
    assert ds.window_starts(228, 128, 28) == [0, 100]
    for L in (129, 500, 1024, 3001):
        s = ds.window_starts(L, 128, 28)
        assert s[0] == 0 and s[-1] + 128 == L  # the last window ends exactly at the border
        assert all(b - a <= 100 for a, b in zip(s, s[1:]))  # stride <= size - gap: overlaps >= gap


def test_patch_names_round_trip():
    for rate in (1.0, 0.5, 1.5):
        name = ds.patch_name("P0001", rate, 824, 0)
        assert ds.parse_patch_name(name) == ("P0001", rate, 824, 0)
    assert ds.patch_name("P0001", 1.0, 0, 100) == "P0001__1__0___100"
    assert ds.parse_patch_name("P0706__0.5__1648___824.png") == ("P0706", 0.5, 1648, 824)
    with pytest.raises(ValueError, match="not a patch name"):
        ds.parse_patch_name("P0001_1_0_0")


def test_split_objects_rules():
    # window [0, 100] x [0, 100]
    inside = [10, 10, 40, 10, 40, 20, 10, 20]
    mostly = [80, 50, 110, 50, 110, 60, 80, 60]  # 2/3 inside -> clipped, difficult 2 (<= 0.7)
    cut = [70, 30, 105, 30, 105, 40, 70, 40]  # 30/35 = 0.857 inside -> clipped, keeps difficulty
    corner = [90, 90, 110, 90, 110, 110, 90, 110]  # a quarter inside
    outside = [150, 150, 160, 150, 160, 160, 150, 160]
    polys = np.array([inside, mostly, cut, corner, outside], np.float64)
    diff = np.array([0, 0, 1, 0, 0])
    p, d, idx = ds.split_objects(polys, diff, (0, 0, 100, 100), 0.7)
    assert idx.tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(p[0], inside)
    assert d.tolist() == [0, 2, 1, 2]
    for k, src in ((1, mostly), (2, cut), (3, corner)):  # the clip is the intersection with the window
        want = Polygon(np.reshape(src, (4, 2))).intersection(box(0, 0, 100, 100))
        got = Polygon(p[k].reshape(4, 2))
        assert got.symmetric_difference(want).area < 1e-9
    # vertex order follows the source polygon: the first corner stays the first corner
    np.testing.assert_allclose(p[2][:2], [70, 30])
    p2, d2, idx2 = ds.split_objects(polys, diff, (0, 0, 100, 100), 0.7, drop_below_thr=True)
    assert idx2.tolist() == [0, 2]


def test_pentagon_reduction():
    # a window corner cuts a rotated box into a pentagon; the devkit merges its shortest edge
    pent = np.array([[0, 0], [10, 0], [10, 5], [9.5, 5.5], [0, 6]], np.float64)
    quad = ds._poly5_to_4(pent)
    assert quad.shape == (4, 2)
    np.testing.assert_allclose(quad[2], [9.75, 5.25])


def _make_full_image(root: Path, W=300, H=260):
    img = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    (root / "images").mkdir(parents=True)
    Image.fromarray(img).save(root / "images" / "P0001.png")
    polys = np.array([
        [20, 20, 60, 20, 60, 35, 20, 35],  # only in the first column/row of windows
        [140, 40, 170, 60, 160, 75, 130, 55],  # in the overlap of windows x=0 and x=100 (x 100..128)
        [230, 200, 280, 200, 280, 220, 230, 220],  # bottom-right, only in the last window
        [90, 120, 200, 120, 200, 130, 90, 130],  # long: cut by every window
    ], np.float64)
    write_dota_txt(root / "labelTxt" / "P0001.txt", polys, ["plane", "ship", "harbor", "bridge"], [0, 0, 1, 0],
                   meta={"imagesource": "GoogleEarth", "gsd": 0.5})
    return img, polys


def test_split_then_merge_round_trip(tmp_path):
    src, dst = tmp_path / "full", tmp_path / "split"
    img, polys = _make_full_image(src)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n = ds.main(["split", "--src", str(src), "--dst", str(dst), "--size", "128", "--gap", "28",
                     "--rates", "1.0", "0.5"])
    assert n == 0
    xs, ys = ds.window_starts(300, 128, 28), ds.window_starts(260, 128, 28)
    names = sorted(p.stem for p in (dst / "images").glob("*.png"))
    expected = sorted([ds.patch_name("P0001", 1.0, x, y) for x in xs for y in ys]
                      + [ds.patch_name("P0001", 0.5, x, y) for x in ds.window_starts(150, 128, 28)
                         for y in ds.window_starts(130, 128, 28)])
    assert names == expected
    # pixels: each patch is the crop of the (scaled) image, zero-padded
    x, y = xs[1], ys[-1]
    patch = np.asarray(Image.open(dst / "images" / f"{ds.patch_name('P0001', 1.0, x, y)}.png"))
    np.testing.assert_array_equal(patch, img[y:y + 128, x:x + 128])
    small = np.asarray(Image.open(dst / "images" / "P0001__0.5__0___0.png"))
    assert small.shape == (128, 128, 3) and np.all(small[:, 150:] == 0)
    # labels: headers carried (gsd / rate), fully contained objects shifted exactly
    lab = read_dota_txt(dst / "labelTxt" / "P0001__0.5__0___0.txt")
    assert lab["meta"] == {"imagesource": "GoogleEarth", "gsd": 1.0}
    np.testing.assert_allclose(lab["polys"][0], polys[0] * 0.5)

    # predictions: every patch's objects as Task1 detections with a per-patch score
    preds = tmp_path / "patch_preds"
    by_class: dict[str, list[str]] = {}
    for k, name in enumerate(names):
        if "__1__" not in name:
            continue
        ann = read_dota_txt(dst / "labelTxt" / f"{name}.txt")
        for poly, cls, lvl in zip(ann["polys"], ann["labels"], ann["difficult_level"]):
            if lvl == 2:  # cut objects are not predicted
                continue
            score = 0.5 + 0.01 * k
            by_class.setdefault(cls, []).append(f"{name} {score:.3f} " + " ".join(f"{v:.2f}" for v in poly))
    for cls, lines in by_class.items():
        (preds / f"Task1_{cls}.txt").parent.mkdir(parents=True, exist_ok=True)
        (preds / f"Task1_{cls}.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "merged"
    ds.main(["merge", "--src", str(preds), "--dst", str(out)])
    for cls, src_poly in (("plane", polys[0]), ("ship", polys[1]), ("harbor", polys[2])):
        names_m, scores, merged = ds.read_task1(out / f"Task1_{cls}.txt")
        assert names_m == ["P0001"]  # duplicates from overlapping patches were suppressed
        np.testing.assert_allclose(merged[0], src_poly, atol=0.01)  # back at full-image coordinates
    # the scaled patches map back through the rate too
    det = ds.merge_detections(["P0001__0.5__0___0"], np.array([0.9]), (polys[:1] * 0.5), None, 0.1)
    np.testing.assert_allclose(det[2][0], polys[0])


def test_merge_rejects_bad_lines(tmp_path):
    (tmp_path / "Task1_ship.txt").write_text("P0001__1__0___0 0.9 1 2 3\n")
    with pytest.raises(ValueError, match=r"Task1_ship\.txt:1: expected"):
        ds.merge_folder(tmp_path, tmp_path / "out")
