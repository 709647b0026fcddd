"""MD17 loader on tiny ``.npz`` files in the release format."""

import numpy as np
import pytest

from visionkit.datamodules.motion.md17 import MD17, read_md17
from visionkit.errors import DataError


def _write(path, n_frames=1600, with_ef=True, **override):
    rng = np.random.default_rng(0)
    z = np.array([6, 1, 8, 1, 6, 1], dtype=np.int64)
    R = rng.standard_normal((n_frames, 6, 3)).cumsum(0) * 0.01
    arrays = {"R": R, "z": z}
    if with_ef:
        arrays.update(E=rng.standard_normal((n_frames, 1)), F=rng.standard_normal((n_frames, 6, 3)))
    arrays.update(override)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return R, z


def test_hydrogens_dropped_and_time_split(tmp_path):
    R, z = _write(tmp_path / "md17_ethanol.npz", n_frames=3200)
    pos, zz = read_md17(tmp_path / "md17_ethanol.npz")
    np.testing.assert_array_equal(zz, [6, 8, 6])
    np.testing.assert_allclose(pos, R[:, [0, 2, 4]], rtol=1e-6)
    dm = MD17(root=str(tmp_path), molecule="ethanol", stride=50, batch_size=2)
    dm.setup("fit")
    # 5:1:2 of 3200 frames = 2000 / 400 / 800; a window spans 19 * 20 + 1 = 381 frames
    assert len(dm.train_dataset) == len(range(0, 2000 - 380, 50))
    assert len(dm.val_dataset) == 1 and len(dm.test_dataset) == len(range(0, 800 - 380, 50))
    item = dm.test_dataset[1]
    t0 = 2400 + 50
    np.testing.assert_allclose(item["past"].numpy(), R[t0:t0 + 200:20][:, [0, 2, 4]].transpose(1, 0, 2), rtol=1e-6)
    np.testing.assert_allclose(item["future"].numpy(),
                               R[t0 + 200:t0 + 400:20][:, [0, 2, 4]].transpose(1, 0, 2), rtol=1e-6)


def test_short_split_and_bad_files(tmp_path):
    _write(tmp_path / "md17_uracil.npz", n_frames=1000)
    with pytest.raises(DataError, match="the val split"):
        MD17(root=str(tmp_path), molecule="uracil").setup("fit")
    _write(tmp_path / "md17_benzene.npz", z=None)
    with pytest.raises(DataError, match=r"md17_benzene.npz: missing array 'z'"):
        read_md17(tmp_path / "md17_benzene.npz")
    _write(tmp_path / "bad.npz", F=np.zeros((3, 6, 3)))
    with pytest.raises(DataError, match=r"bad.npz: array 'F' has 3 frames"):
        read_md17(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        read_md17(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError, match="data.init_args.molecule"):
        MD17(root=str(tmp_path), molecule="toluene").setup("fit")


def test_optional_energy_forces(tmp_path):
    _write(tmp_path / "x.npz", with_ef=False)
    assert read_md17(tmp_path / "x.npz")[0].shape == (1600, 3, 3)
