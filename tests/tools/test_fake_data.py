"""tools/fake_data.py: the fake datasets read back through the loaders, with the sizes asked for."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
from shapely.geometry import Polygon, box

from visionkit.datamodules.obb.dota import DOTA_V1_0_CLASSES, read_dota_txt
from visionkit.datamodules.pointcloud.shapenetpart import SHAPENETPART_PARTS

TOOL = Path(__file__).resolve().parents[2] / "tools" / "fake_data.py"
spec = importlib.util.spec_from_file_location("fake_data", TOOL)
fake = importlib.util.module_from_spec(spec)
sys.modules.setdefault("fake_data", fake)
spec.loader.exec_module(fake)


def test_dota_objects_lie_in_their_patch(tmp_path):
    root = fake.write_dota(tmp_path, n_images=3, size=96, objects=(5, 9), point_dir="points")
    patch = box(0, 0, 96, 96)
    for f in sorted((root / "train" / "labelTxt").glob("*.txt")):
        ann = read_dota_txt(f, DOTA_V1_0_CLASSES)
        assert 5 <= len(ann["labels"]) <= 9
        for poly in ann["polys"]:
            p = Polygon(poly.reshape(4, 2))
            assert p.is_valid and p.area > 1 and patch.contains(p)
        pts = np.loadtxt(root / "train" / "points" / f.name, usecols=(0, 1), ndmin=2)
        centres = ann["polys"].reshape(-1, 4, 2).mean(1)
        np.testing.assert_allclose(pts, centres, atol=0.06)  # labels keep 1 decimal, points 2
    assert not (root / "test" / "labelTxt").exists()


def test_shapenetpart_labels_belong_to_their_category(tmp_path):
    root = fake.write_shapenetpart(tmp_path, per_split=16, points=50)
    for name, synset in fake.SHAPENET_SYNSETS.items():
        for f in (root / synset).glob("*.txt"):
            labels = np.loadtxt(f)[:, 6].astype(int)
            assert set(labels) <= set(SHAPENETPART_PARTS[name])


def test_eth_ucy_crowd_size_and_speed(tmp_path):
    root = fake.write_eth_ucy(tmp_path, frames=200, peds=(20, 40), extent=24.0)
    d = np.loadtxt(root / "zara1" / "zara1.txt")
    _, per_frame = np.unique(d[:, 0], return_counts=True)
    assert 10 <= np.median(per_frame) <= 60
    for pid in np.unique(d[:, 1])[:10]:
        track = d[d[:, 1] == pid]
        step = np.linalg.norm(np.diff(track[:, 2:], axis=0), axis=1)
        assert np.all(np.diff(track[:, 0]) == 10) and np.median(step) < 0.8  # 0.4 s frames, walking pace
