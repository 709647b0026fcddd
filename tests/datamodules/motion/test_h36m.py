"""Human3.6M exp-map loader: forward kinematics against an independent scipy reference, splits, errors."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from visionkit.datamodules.motion.h36m import (
    KEPT_JOINTS,
    OFFSETS_MM,
    PARENTS,
    Human36M,
    expmap_to_positions,
    read_expmap_file,
)
from visionkit.errors import DataError


def _write(path, n_frames, seed):
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((n_frames, 99)) * 0.3
    e[:, :3] *= 1000
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(",".join(f"{v:.8f}" for v in row) + "\n" for row in e))
    return np.array([[float(f"{v:.8f}") for v in row] for row in e])


def _reference_fk(frame):
    """Per-joint loop with scipy rotations; root translation and rotation zeroed."""
    rot = [Rotation.from_rotvec(frame[3 + 3 * j:6 + 3 * j]).as_matrix() for j in range(32)]
    rot[0] = np.eye(3)
    R, x = [rot[0]], [np.zeros(3)]
    for j in range(1, 32):
        p = PARENTS[j]
        x.append(OFFSETS_MM[j] @ R[p] + x[p])
        R.append(rot[j] @ R[p])
    return np.stack(x)


def test_forward_kinematics_matches_reference(tmp_path):
    e = _write(tmp_path / "S1" / "walking_1.txt", 6, 0)
    read = read_expmap_file(tmp_path / "S1" / "walking_1.txt")
    np.testing.assert_allclose(read, e)
    pos = expmap_to_positions(torch.from_numpy(read)).numpy()
    for t in range(6):
        np.testing.assert_allclose(pos[t], _reference_fk(e[t]), atol=1e-8)
    # bone lengths are the offsets' norms whatever the angles
    bones = np.linalg.norm(pos[:, 1:] - pos[:, list(PARENTS[1:])], axis=-1)
    np.testing.assert_allclose(bones, np.broadcast_to(np.linalg.norm(OFFSETS_MM[1:], axis=-1), bones.shape), atol=1e-8)
    assert len(KEPT_JOINTS) == 22


def test_splits_and_protocols(tmp_path):
    for s in (1, 6, 7, 8, 9, 11, 5):
        for sub in (1, 2):
            _write(tmp_path / f"S{s}" / f"walking_{sub}.txt", 90, s * 10 + sub)  # 45 frames at 25 fps
    dm = Human36M(root=str(tmp_path), actions=["walking"], test_protocol="all", test_stride=5, train_stride=5)
    dm.setup("fit")
    assert len(dm.train_dataset) == 5 * 2 * len(range(0, 45 - 35 + 1, 5))
    item = dm.test_dataset[1]
    assert item["past"].shape == (22, 10, 3) and item["future"].shape == (22, 25, 3)
    e = read_expmap_file(tmp_path / "S5" / "walking_1.txt")[::2]
    ref = np.stack([_reference_fk(e[t])[list(KEPT_JOINTS)] for t in range(5, 40)], 1)  # window starting at 5
    np.testing.assert_allclose(torch.cat([item["past"], item["future"]], 1).numpy(), ref, atol=1e-2)
    sampled = Human36M(root=str(tmp_path), actions=["walking"], test_protocol="sampled", test_samples_per_action=8)
    sampled.setup("test")
    assert len(sampled.test_dataset) == 8
    again = Human36M(root=str(tmp_path), actions=["walking"], test_protocol="sampled", test_samples_per_action=8)
    again.setup("test")
    torch.testing.assert_close(sampled.test_dataset.past, again.test_dataset.past)


def test_bad_files(tmp_path):
    bad = tmp_path / "S1" / "eating_1.txt"
    _write(bad, 3, 0)
    lines = bad.read_text().splitlines()
    lines[1] = ",".join(lines[1].split(",")[:50])
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"eating_1.txt:2: expected 99"):
        read_expmap_file(bad)
    with pytest.raises(ValueError, match="data.init_args.test_protocol"):
        Human36M(root=str(tmp_path), test_protocol="odd")
    with pytest.raises(FileNotFoundError, match="data.init_args.root"):
        Human36M(root=str(tmp_path), actions=["walking"]).setup("fit")
