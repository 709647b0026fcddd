"""Real-format loaders on tiny files written in the exact on-disk formats; malformed files name themselves."""

import json

import h5py
import numpy as np
import pytest

from visionkit.datamodules.pointcloud import ModelNet40, PointCloudFolder, ScanObjectNN, ShapeNetPart
from visionkit.errors import DataError, DatasetNotFoundError


def write_modelnet_txt(root, n_points=40):
    rng = np.random.default_rng(0)
    (root / "modelnet40_shape_names.txt").write_text("airplane\nbathtub\n")
    (root / "modelnet40_train.txt").write_text("airplane_0001\nbathtub_0001\nbathtub_0002\n")
    (root / "modelnet40_test.txt").write_text("airplane_0627\n")
    for sid in ["airplane_0001", "bathtub_0001", "bathtub_0002", "airplane_0627"]:
        cls = sid.rsplit("_", 1)[0]
        (root / cls).mkdir(exist_ok=True)
        arr = rng.normal(size=(n_points, 6))
        (root / cls / f"{sid}.txt").write_text("\n".join(",".join(f"{v:.6f}" for v in r) for r in arr) + "\n")


def test_modelnet_normal_resampled(tmp_path):
    write_modelnet_txt(tmp_path)
    dm = ModelNet40(root=str(tmp_path), num_points=32, batch_size=2)
    dm.setup("fit")
    assert len(dm.train_dataset) == 3 and len(dm.val_dataset) == 1
    s = dm.train_dataset[1]
    assert s["points"].shape == (32, 3) and s["normals"].shape == (32, 3) and int(s["label"]) == 1
    assert float(s["points"].norm(dim=-1).max()) == pytest.approx(1.0, abs=1e-5)
    raw = np.loadtxt(tmp_path / "bathtub" / "bathtub_0001.txt", delimiter=",")[:32]
    np.testing.assert_allclose(s["normals"].numpy(), raw[:, 3:], atol=1e-6)
    batch = next(iter(dm.train_dataloader()))
    assert batch["points"].shape == (2, 32, 3)


def test_modelnet_txt_malformed_and_truncated(tmp_path):
    write_modelnet_txt(tmp_path)
    bad = tmp_path / "bathtub" / "bathtub_0002.txt"
    lines = bad.read_text().splitlines()
    lines[4] = "0.1,0.2,0.3"
    bad.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"bathtub_0002.txt:5: expected 6 values, got 3"):
        ModelNet40(root=str(tmp_path), num_points=32).setup("fit")
    bad.write_text("\n".join(lines[:3]))  # truncated
    with pytest.raises(DataError, match=r"bathtub_0002.txt: 3 rows, at least 32"):
        ModelNet40(root=str(tmp_path), num_points=32).setup("fit")
    with pytest.raises(DatasetNotFoundError, match="data.init_args.root"):
        ModelNet40(root=str(tmp_path / "nope")).setup("fit")


def test_modelnet_hdf5_and_truncated_file(tmp_path):
    rng = np.random.default_rng(0)
    for name, n in [("ply_data_train0.h5", 5), ("ply_data_train1.h5", 3), ("ply_data_test0.h5", 2)]:
        with h5py.File(tmp_path / name, "w") as f:
            f["data"] = rng.normal(size=(n, 64, 3)).astype(np.float32)
            f["label"] = rng.integers(0, 40, (n, 1)).astype(np.uint8)
    dm = ModelNet40(root=str(tmp_path), format="hdf5", num_points=48, up_axis="y")
    dm.setup("fit")
    assert len(dm.train_dataset) == 8 and dm.train_dataset[0]["points"].shape == (48, 3)
    with h5py.File(tmp_path / "ply_data_train1.h5", "r") as f:
        assert int(dm.train_dataset[5]["label"]) == int(f["label"][0, 0])
    data = (tmp_path / "ply_data_train1.h5").read_bytes()
    (tmp_path / "ply_data_train1.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match="ply_data_train1.h5"):
        ModelNet40(root=str(tmp_path), format="hdf5", num_points=48).setup("fit")


def write_shapenetpart(root):
    rng = np.random.default_rng(0)
    (root / "synsetoffset2category.txt").write_text("Airplane\t02691156\nBag\t02773838\n")
    split = root / "train_test_split"
    split.mkdir()
    shapes = {"train": [("02691156", "a1"), ("02773838", "b1")], "val": [("02691156", "a2")],
              "test": [("02773838", "b2"), ("03001627", "c1")]}  # Chair is not in the category file: skipped
    for s, items in shapes.items():
        (split / f"shuffled_{s}_file_list.json").write_text(json.dumps([f"shape_data/{a}/{b}" for a, b in items]))
        for synset, sid in items:
            (root / synset).mkdir(exist_ok=True)
            parts = [0, 1, 2, 3] if synset == "02691156" else [4, 5]
            arr = np.concatenate([rng.normal(size=(30, 6)), rng.choice(parts, (30, 1))], 1)
            (root / synset / f"{sid}.txt").write_text("\n".join(" ".join(f"{v:.5f}" for v in r[:6])
                                                               + f" {int(r[6])}" for r in arr))


def test_shapenetpart(tmp_path):
    write_shapenetpart(tmp_path)
    dm = ShapeNetPart(root=str(tmp_path), num_points=40)
    dm.setup("fit")
    dm.setup("test")
    assert len(dm.train_dataset) == 2 and len(dm.val_dataset) == 1 and len(dm.test_dataset) == 1
    s = dm.train_dataset[1]
    assert s["points"].shape == (40, 3) and s["seg"].shape == (40,) and int(s["category"]) == 1
    assert set(s["seg"].tolist()) <= {4, 5}
    raw = np.loadtxt(tmp_path / "02773838" / "b1.txt")
    np.testing.assert_array_equal(s["seg"][:30].numpy(), raw[:, 6].astype(int))
    assert sum(dm.parts_per_category) == 50 and len(dm.parts_per_category) == 16


def test_shapenetpart_bad_label_and_bad_line(tmp_path):
    write_shapenetpart(tmp_path)
    f = tmp_path / "02691156" / "a1.txt"
    lines = f.read_text().splitlines()
    lines[2] = lines[2].rsplit(" ", 1)[0] + " 7"  # part 7 is a Cap part
    f.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"a1.txt: part labels must be integers in 0..3"):
        ShapeNetPart(root=str(tmp_path)).setup("fit")
    lines[2] = "1 2 x 4 5 6 0"
    f.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"a1.txt:3: non-numeric"):
        ShapeNetPart(root=str(tmp_path)).setup("fit")


def test_scanobjectnn(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "main_split").mkdir()
    files = [("training_objectdataset_augmentedrot_scale75.h5", 6), ("test_objectdataset_augmentedrot_scale75.h5", 3)]
    for name, n in files:
        with h5py.File(tmp_path / "main_split" / name, "w") as f:
            f["data"] = rng.normal(size=(n, 100, 3)).astype(np.float32)
            f["label"] = rng.integers(0, 15, n).astype(np.int64)
            f["mask"] = np.zeros((n, 100), dtype=np.int64)
    dm = ScanObjectNN(root=str(tmp_path), num_points=64)
    dm.setup("fit")
    assert len(dm.train_dataset) == 6 and dm.train_dataset[0]["points"].shape == (64, 3)
    with h5py.File(tmp_path / "main_split" / "test_objectdataset_augmentedrot_scale75.h5", "w") as f:
        f["points"] = np.zeros((2, 100, 3))
    with pytest.raises(DataError, match=r"test_objectdataset_augmentedrot_scale75.h5: missing dataset"):
        ScanObjectNN(root=str(tmp_path), num_points=64).setup("test")


def test_folder_of_meshes_and_points(tmp_path):
    import open3d as o3d

    for cls in ["cube", "ball"]:
        for split in ["train", "test"]:
            (tmp_path / cls / split).mkdir(parents=True)
    box = o3d.geometry.TriangleMesh.create_box()
    o3d.io.write_triangle_mesh(str(tmp_path / "cube" / "train" / "a.off"), box)
    o3d.io.write_triangle_mesh(str(tmp_path / "cube" / "test" / "b.obj"), box)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.random.default_rng(0).normal(size=(50, 3))))
    o3d.io.write_point_cloud(str(tmp_path / "ball" / "train" / "c.pcd"), pcd)
    o3d.io.write_point_cloud(str(tmp_path / "ball" / "test" / "d.ply"), pcd)
    dm = PointCloudFolder(root=str(tmp_path), num_points=64)
    dm.setup("fit")
    assert dm.classes == ["ball", "cube"] and dm.num_classes == 2
    s = dm.train_dataset[1]
    assert s["points"].shape == (64, 3) and int(s["label"]) == 1
    # cube surface samples: every point lies on one of the six axis-aligned face planes
    p = s["points"].numpy()
    gap = np.minimum(np.abs(p - p.min(0)), np.abs(p - p.max(0))).min(1)
    np.testing.assert_allclose(gap, 0.0, atol=1e-5)
    (tmp_path / "ball" / "train" / "broken.ply").write_text("ply\nformat ascii 1.0\nelement vertex 5\n")
    with pytest.raises(DataError, match="broken.ply"):
        PointCloudFolder(root=str(tmp_path), num_points=64).setup("fit")
