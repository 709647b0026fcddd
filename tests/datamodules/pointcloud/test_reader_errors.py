"""Broken h5 files of ModelNet40 / ScanObjectNN: each is refused with the file (and record) named."""

import h5py
import numpy as np
import pytest

from visionkit.datamodules.pointcloud import ModelNet40, ScanObjectNN
from visionkit.errors import DataError


def _write(path, data, label):
    with h5py.File(path, "w") as f:
        if data is not None:
            f["data"] = data
        if label is not None:
            f["label"] = label


def _good(n=4, points=64):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, points, 3)).astype(np.float32), rng.integers(0, 10, (n, 1)).astype(np.int64)


def _nan(d, lab):
    d[2, 5, 1] = np.nan
    return d, lab


def _inf(d, lab):
    d[3, 0, 0] = -np.inf
    return d, lab


def _label_high(d, lab):
    lab[1] = 40
    return d, lab


def _label_negative(d, lab):
    lab[2] = -1
    return d, lab


BROKEN = {
    "nan point": (_nan, "record 2"),
    "inf point": (_inf, "record 3"),
    "label 40": (_label_high, "label of record 1 is 40, outside 0..39"),
    "label -1": (_label_negative, "label of record 2 is -1"),
    "no label": (lambda d, lab: (d, None), "missing dataset(s) ['label']"),
    "2-d points": (lambda d, lab: (d[..., :2], lab), "expected data (S, N, 3)"),
    "too few points": (lambda d, lab: (d[:, :16], lab), "16 points per cloud, 48 requested"),
    "label count": (lambda d, lab: (d, lab[:3]), "expected data (S, N, 3) and label"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_modelnet_h5_broken_inputs_name_the_file(tmp_path, case):
    damage, expected = BROKEN[case]
    _write(tmp_path / "ply_data_train0.h5", *_good())
    bad = tmp_path / "ply_data_train1.h5"
    _write(bad, *damage(*_good()))
    with pytest.raises(DataError) as exc:
        ModelNet40(root=str(tmp_path), format="hdf5", num_points=48, up_axis="y").setup("fit")
    assert str(bad) in str(exc.value) and expected in str(exc.value), str(exc.value)


def test_modelnet_h5_truncated_and_garbage(tmp_path):
    _write(tmp_path / "ply_data_train0.h5", *_good())
    data = (tmp_path / "ply_data_train0.h5").read_bytes()
    for name, blob in [("ply_data_train1.h5", data[: len(data) // 2]), ("ply_data_train2.h5", b"\x00" * 100)]:
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(DataError, match=name):
            ModelNet40(root=str(tmp_path), format="hdf5", num_points=48).setup("fit")
        (tmp_path / name).unlink()


@pytest.mark.parametrize("case", ["nan point", "label -1", "no label"])
def test_scanobjectnn_broken_inputs_name_the_file(tmp_path, case):
    damage, expected = BROKEN[case]
    d, lab = damage(*_good())
    path = tmp_path / "training_objectdataset.h5"
    _write(path, d, lab)
    _write(tmp_path / "test_objectdataset.h5", *_good())
    with pytest.raises(DataError) as exc:
        ScanObjectNN(root=str(tmp_path), num_points=48, train_file="training_objectdataset.h5",
                     test_file="test_objectdataset.h5").setup("fit")
    assert str(path) in str(exc.value) and expected in str(exc.value), str(exc.value)
