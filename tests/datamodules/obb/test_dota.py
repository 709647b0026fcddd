"""DOTA / RSAR / DIOR-R readers, writers and datamodules on tiny fixture files in the real formats."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from shapely.geometry import Polygon

from visionkit.datamodules.obb.dota import (
    DIORR,
    DOTA,
    DOTA_V1_0_CLASSES,
    DOTA_V1_5_CLASSES,
    DOTA_V2_0_CLASSES,
    RSAR,
    read_dior_xml,
    read_dota_txt,
    read_point_txt,
    write_dota_txt,
    write_point_txt,
)
from visionkit.errors import DataError, DatasetNotFoundError
from visionkit.ops.rotated_boxes import obb2poly, poly2obb

torch.set_num_threads(1)  # the machine is shared: no thread oversubscription

DOTA_TXT = """imagesource:GoogleEarth
gsd:0.146343590398
2753 2408 2861 2385 2888 2468 2805 2502 plane 0
3445 3391 3484 3409 3478 3422 3437 3402 large-vehicle 0
10.0 20.0 60.0 20.0 60.0 40.0 10.0 40.0 small-vehicle 1
"""

DIOR_XML = """<annotation>
  <filename>00001.jpg</filename>
  <source><database>DIOR</database></source>
  <size><width>64</width><height>48</height><depth>3</depth></size>
  <segmented>0</segmented>
  <object>
    <name>Expressway-Service-area</name>
    <pose>Unspecified</pose>
    <truncated>0</truncated>
    <difficult>0</difficult>
    <robndbox>
      <x_left_top>10</x_left_top><y_left_top>10</y_left_top>
      <x_right_top>40</x_right_top><y_right_top>10</y_right_top>
      <x_right_bottom>40</x_right_bottom><y_right_bottom>22</y_right_bottom>
      <x_left_bottom>10</x_left_bottom><y_left_bottom>22</y_left_bottom>
      <angle>0</angle>
    </robndbox>
  </object>
  <object>
    <name>ship</name>
    <difficult>1</difficult>
    <bndbox>
      <x_left_top>30</x_left_top><y_left_top>30</y_left_top>
      <x_right_top>50</x_right_top><y_right_top>40</y_right_top>
      <x_right_bottom>46</x_right_bottom><y_right_bottom>48</y_right_bottom>
      <x_left_bottom>26</x_left_bottom><y_left_bottom>38</y_left_bottom>
    </bndbox>
  </object>
</annotation>
"""


def _png(path, H=48, W=64, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return arr


def test_class_lists():
    assert len(DOTA_V1_0_CLASSES) == 15 and len(DOTA_V1_5_CLASSES) == 16 and len(DOTA_V2_0_CLASSES) == 18
    assert DOTA_V1_5_CLASSES[-1] == "container-crane" and DOTA_V2_0_CLASSES[-2:] == ("airport", "helipad")


def test_read_dota_with_header(tmp_path):
    p = tmp_path / "P0001.txt"
    p.write_text(DOTA_TXT)
    out = read_dota_txt(p, DOTA_V1_0_CLASSES)
    assert out["meta"] == {"imagesource": "GoogleEarth", "gsd": pytest.approx(0.146343590398)}
    assert out["polys"].shape == (3, 8) and out["polys"].dtype == np.float64
    assert out["labels"] == ["plane", "large-vehicle", "small-vehicle"]
    assert out["difficult"].tolist() == [False, False, True]
    assert out["lines"].tolist() == [3, 4, 5]
    np.testing.assert_array_equal(out["polys"][0], [2753, 2408, 2861, 2385, 2888, 2468, 2805, 2502])


def test_missing_difficult_and_null_gsd(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("gsd:null\n0 0 10 0 10 5 0 5 ship\n")
    out = read_dota_txt(p)
    assert out["meta"]["gsd"] is None and out["difficult"].tolist() == [False]


@pytest.mark.parametrize("line,msg", [
    ("0 0 10 0 10 5 0 5 spaceship 0", "unknown class 'spaceship'"),
    ("0 0 10 0 10 5 0 plane 0", "expected 8 coordinates"),
    ("0 0 10 0 1O 5 0 5 plane 0", "coordinates must be numbers"),
    ("0 0 10 0 10 5 0 5 plane x", "difficult must be an integer"),
])
def test_malformed_lines_name_file_and_line(tmp_path, line, msg):
    p = tmp_path / "bad.txt"
    p.write_text("imagesource:GoogleEarth\n0 0 10 0 10 5 0 5 plane 0\n" + line + "\n")
    with pytest.raises(DataError, match=rf"bad\.txt:3: .*{msg}"):
        read_dota_txt(p, DOTA_V1_0_CLASSES)


def test_rsar_rejects_header(tmp_path):
    p = tmp_path / "r.txt"
    p.write_text("gsd:1\n0 0 10 0 10 5 0 5 ship 0\n")
    with pytest.raises(DataError, match=r"r\.txt:1: header"):
        read_dota_txt(p, allow_header=False)


def test_degenerate_reported_kept_or_skipped(tmp_path):
    p = tmp_path / "deg.txt"
    p.write_text("0 0 10 0 10 5 0 5 ship 0\n0 0 10 10 20 20 30 30 ship 0\n5 5 5 5 5 5 5 5 plane 0\n")
    with pytest.warns(UserWarning, match=r"2 degenerate.*deg\.txt:2, .*deg\.txt:3"):
        kept = read_dota_txt(p, degenerate="keep")
    assert len(kept["labels"]) == 3 and kept["degenerate_lines"].tolist() == [2, 3]
    with pytest.warns(UserWarning, match="skipped"):
        skipped = read_dota_txt(p, degenerate="skip")
    assert skipped["labels"] == ["ship"] and skipped["lines"].tolist() == [1]
    with pytest.raises(DataError, match=r"deg\.txt:2"):
        read_dota_txt(p, degenerate="error")


def test_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    polys = rng.uniform(0, 1000, (7, 8))
    names = [DOTA_V1_0_CLASSES[i] for i in rng.integers(0, 15, 7)]
    diff = rng.integers(0, 3, 7)
    p = tmp_path / "sub" / "rt.txt"
    write_dota_txt(p, polys, names, diff, meta={"imagesource": "GoogleEarth", "gsd": 0.5})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = read_dota_txt(p, DOTA_V1_0_CLASSES)
    np.testing.assert_array_equal(out["polys"], polys)  # exact float round trip
    assert out["labels"] == names and out["difficult_level"].tolist() == diff.tolist()
    assert out["meta"] == {"imagesource": "GoogleEarth", "gsd": 0.5}
    assert not list(p.parent.glob(".*tmp"))  # atomic write left no temporary file


def test_point_files(tmp_path):
    p = tmp_path / "pts.txt"
    write_point_txt(p, np.array([[3.5, 4.0], [60.0, 47.0]]), ["ship", "tank"])
    out = read_point_txt(p, ("ship", "tank"), image_size=(48, 64))
    np.testing.assert_array_equal(out["points"], [[3.5, 4.0], [60.0, 47.0]])
    assert out["labels"] == ["ship", "tank"]
    p.write_text("3 4 ship\n70 5 ship\n")
    with pytest.raises(DataError, match=r"pts\.txt:2: point \(70, 5\) outside the 64x48 image"):
        read_point_txt(p, ("ship",), image_size=(48, 64))
    p.write_text("3 4 ship\n\n5 5 boat\n")
    with pytest.raises(DataError, match=r"pts\.txt:3: unknown class 'boat'"):
        read_point_txt(p, ("ship",))
    p.write_text("3 4\n")
    with pytest.raises(DataError, match=r"pts\.txt:1: expected 'x y class'"):
        read_point_txt(p)


def test_dior_xml(tmp_path):
    p = tmp_path / "00001.xml"
    p.write_text(DIOR_XML)
    out = read_dior_xml(p)
    assert out["labels"] == ["expressway-service-area", "ship"]
    assert out["difficult"].tolist() == [False, True]
    assert out["meta"] == {"width": 64, "height": 48}
    np.testing.assert_array_equal(out["polys"][1], [30, 30, 50, 40, 46, 48, 26, 38])
    p.write_text(DIOR_XML.replace("<name>ship</name>", "<name>boat</name>"))
    with pytest.raises(DataError, match=r"00001\.xml:object 2: unknown class 'boat'"):
        read_dior_xml(p)
    p.write_text(DIOR_XML.replace("<x_right_top>50</x_right_top>", ""))
    with pytest.raises(DataError, match=r"object 2: missing <x_right_top>"):
        read_dior_xml(p)


def _dota_root(tmp_path):
    root = tmp_path / "dota"
    for split in ("train", "val", "test"):
        for k in range(2):
            _png(root / split / "images" / f"P{k:04d}__1__0___0.png", seed=k)
            if split != "test":
                lab = root / split / "labelTxt" / f"P{k:04d}__1__0___0.txt"
                lab.parent.mkdir(parents=True, exist_ok=True)
                lab.write_text("imagesource:GoogleEarth\ngsd:0.2\n"
                               "10 10 40 10 40 22 10 22 plane 0\n30 30 50 40 46 48 26 38 ship 1\n")
    return root


def test_dota_datamodule(tmp_path):
    root = _dota_root(tmp_path)
    dm = DOTA(root=str(root), version="v1.0", image_size=32, batch_size=2)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 32)
    assert batch["orig_size"].tolist() == [[48, 64], [48, 64]]
    scale = batch["scale"][0].item()
    assert scale == pytest.approx(0.5)
    polys = torch.tensor([[10, 10, 40, 10, 40, 22, 10, 22], [30, 30, 50, 40, 46, 48, 26, 38]], dtype=torch.float64)
    expected = poly2obb(polys, "le90").float()
    expected[:, :4] *= scale
    assert torch.allclose(batch["boxes"][0], expected, atol=1e-5)
    assert batch["labels"][0].tolist() == [DOTA_V1_0_CLASSES.index("plane"), DOTA_V1_0_CLASSES.index("ship")]
    assert batch["difficult"][0].tolist() == [False, True]
    assert torch.allclose(batch["points"][0], expected[:, :2])
    dm.setup("test")
    tb = next(iter(dm.test_dataloader()))
    assert tb["boxes"][0].shape == (0, 5)  # the test split has no labels
    assert dm.num_classes == 15


def test_dota_dataset_folder(tmp_path):
    from visionkit.datamodules.obb.dota import DOTADataset

    root = _dota_root(tmp_path)
    ds = DOTADataset(root / "val", DOTA_V1_0_CLASSES)
    assert len(ds) == 2 and ds[1]["image_id"] == "P0001__1__0___0" and ds[1]["boxes"].shape == (2, 5)
    assert len(DOTADataset(root / "test")[0]["boxes"]) == 0


def test_dota_random_points_and_point_files(tmp_path):
    root = _dota_root(tmp_path)
    dm = DOTA(root=str(root), image_size=None, point_mode="random", batch_size=2)
    dm.setup("fit")
    s1, s2 = dm.train_dataset[0], dm.train_dataset[0]
    assert torch.equal(s1["points"], s2["points"])  # seeded: the same point every epoch
    for pt, box in zip(s1["points"], s1["gt_boxes"]):
        poly = Polygon(obb2poly(box[None].double())[0].reshape(4, 2).numpy())
        assert poly.buffer(1e-4).contains(Polygon([(pt[0], pt[1]), (pt[0] + 1e-6, pt[1]), (pt[0], pt[1] + 1e-6)]))
    # point labels from files
    for split in ("train", "val"):
        for k in range(2):
            (root / split / "pointTxt").mkdir(exist_ok=True)
            (root / split / "pointTxt" / f"P{k:04d}__1__0___0.txt").write_text("12.5 14 plane\n")
    dm = DOTA(root=str(root), image_size=None, point_dir="pointTxt", batch_size=2)
    dm.setup("fit")
    s = dm.train_dataset[0]
    assert s["points"].tolist() == [[12.5, 14.0]] and s["point_labels"].tolist() == [0]
    (root / "train" / "pointTxt" / "P0001__1__0___0.txt").write_text("12.5 14 plane\n99 14 plane\n")
    with pytest.raises(DataError, match=r"P0001__1__0___0\.txt:2: point \(99, 14\) outside"):
        dm.train_dataset[1]


def test_dota_augment_keeps_boxes_on_objects(tmp_path):
    root = _dota_root(tmp_path)
    dm = DOTA(root=str(root), image_size=64, batch_size=2, hflip_prob=1.0, vflip_prob=0.0, rot90_prob=0.0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    out = dm.augment(batch)
    assert torch.equal(out["image"], batch["image"].flip(-1))
    b0, b1 = batch["boxes"][0], out["boxes"][0]
    assert torch.allclose(b1[:, 0], 64 - b0[:, 0]) and torch.allclose(b1[:, 2:4], b0[:, 2:4])
    p0 = obb2poly(b0.double()).reshape(-1, 4, 2)
    p0[..., 0] = 64 - p0[..., 0]
    p1 = obb2poly(b1.double()).reshape(-1, 4, 2)
    assert torch.cdist(p0, p1).amin(-1).amax() < 1e-4


def test_dota_missing_root_and_bad_version(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="data.init_args.root"):
        DOTA(root=str(tmp_path / "nope")).setup("fit")
    with pytest.raises(ValueError, match="version"):
        DOTA(version="v3")


def test_dota_dataset_counts_degenerate(tmp_path):
    root = _dota_root(tmp_path)
    (root / "train" / "labelTxt" / "P0000__1__0___0.txt").write_text(
        "10 10 40 10 40 22 10 22 plane 0\n3 3 3 3 3 3 3 3 ship 0\n")
    dm = DOTA(root=str(root), image_size=None, degenerate="keep")
    with pytest.warns(UserWarning, match=r"1 degenerate.*P0000__1__0___0\.txt:2"):
        dm.setup("fit")
    assert dm.train_dataset.num_degenerate == 1
    assert dm.train_dataset[0]["boxes"].shape[0] == 2
    dm = DOTA(root=str(root), image_size=None, degenerate="skip")
    with pytest.warns(UserWarning, match="degenerate"):
        dm.setup("fit")
    assert dm.train_dataset[0]["boxes"].shape[0] == 1


def test_rsar_layout(tmp_path):
    root = tmp_path / "RSAR"
    for split in ("train", "val", "test"):
        _png(root / split / "images" / "0001.jpg".replace(".jpg", ".png"), seed=1)
        ann = root / split / "annfiles" / "0001.txt"
        ann.parent.mkdir(parents=True, exist_ok=True)
        ann.write_text("10 10 40 10 40 22 10 22 tank 0\n30 30 50 40 46 48 26 38 harbor 0\n")
    dm = RSAR(root=str(root), image_size=None)
    dm.setup("fit")
    s = dm.train_dataset[0]
    assert s["labels"].tolist() == [3, 5] and s["image"].shape == (3, 48, 64)
    (root / "val" / "annfiles" / "0001.txt").write_text("10 10 40 10 40 22 10 22 plane 0\n")
    dm = RSAR(root=str(root), image_size=None)
    with pytest.raises(DataError, match=r"0001\.txt:1: unknown class 'plane'"):
        dm.setup("fit")


def test_dior_r_layout(tmp_path):
    root = tmp_path / "DIOR-R"
    for stem, folder in (("00001", "JPEGImages-trainval"), ("00002", "JPEGImages-trainval"),
                         ("11726", "JPEGImages-test")):
        arr = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        (root / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(root / folder / f"{stem}.jpg")
        ann = root / "Annotations" / "Oriented Bounding Boxes" / f"{stem}.xml"
        ann.parent.mkdir(parents=True, exist_ok=True)
        ann.write_text(DIOR_XML)
    sets = root / "ImageSets" / "Main"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("00001\n")
    (sets / "val.txt").write_text("00002\n")
    (sets / "test.txt").write_text("11726\n")
    dm = DIORR(root=str(root), image_size=32, batch_size=1)
    dm.setup()
    s = dm.test_dataset[0]
    assert s["image_id"] == "11726" and s["image"].shape == (3, 32, 32)
    assert s["labels"].tolist() == [6, 13] and s["difficult"].tolist() == [False, True]
    box = s["boxes"][0]  # the 30 x 12 axis-aligned rectangle, halved
    assert box.tolist() == pytest.approx([12.5, 8.0, 15.0, 6.0, 0.0], abs=1e-5)
    assert math.isclose(float(s["boxes"][1, 2] * s["boxes"][1, 3]), float(np.hypot(20, 10) * np.hypot(4, 8)) / 4,
                        rel_tol=1e-5)
    (sets / "val.txt").write_text("00002\n99999\n")
    with pytest.raises(DataError, match=r"val\.txt:2: no image 99999"):
        DIORR(root=str(root)).setup("fit")


def test_task1_round_trip(tmp_path):
    from visionkit.datamodules.obb.dota import read_task1, write_task1

    polys = np.array([[1.25, 2.5, 30.0, 2.5, 30.0, 12.75, 1.25, 12.75], [5, 5, 9, 5, 9, 7, 5, 7]], np.float64)
    write_task1(tmp_path / "Task1_plane.txt", ["P0001", "P0002"], torch.tensor([0.9, 0.25]), polys)
    names, scores, got = read_task1(tmp_path / "Task1_plane.txt")
    assert names == ["P0001", "P0002"] and scores.tolist() == [0.9, 0.25]
    np.testing.assert_array_equal(got, polys)
    (tmp_path / "Task1_plane.txt").write_text("P0001 0.9 1 2 3 4 5 6 7 x\n")
    with pytest.raises(DataError, match=r"Task1_plane\.txt:1: score and coordinates must be numbers"):
        read_task1(tmp_path / "Task1_plane.txt")
