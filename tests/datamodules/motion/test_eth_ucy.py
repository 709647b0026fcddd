"""ETH-UCY loader on tiny files written in both on-disk layouts."""

import numpy as np
import pytest
import torch

from visionkit.datamodules.motion.eth_ucy import ETHUCY, SCENES, read_trajectory_file, trajectory_windows
from visionkit.errors import DataError


def _tracks(seed: int, n_frames: int = 30, n_peds: int = 4):
    """Pedestrians with random entry/exit frames (frame numbers step 10): rows frame, id, x, y."""
    rng = np.random.default_rng(seed)
    rows = []
    for pid in range(1, n_peds + 1):
        a = int(rng.integers(0, 8))
        b = int(rng.integers(a + 18, n_frames + 1))
        xy = rng.standard_normal(2) * 3 + np.cumsum(rng.standard_normal((b - a, 2)) * 0.3, 0)
        rows += [(10 * (a + k), pid, *xy[k]) for k in range(b - a)]
    return rows


def _write4(path, rows):
    path.write_text("".join(f"{f:.1f}\t{p:.1f}\t{x:.4f}\t{y:.4f}\n" for f, p, x, y in rows))


def _write17(path, rows):
    lines = []
    for f, p, x, y in rows:
        cols = [f"{f:.0f}", f"{p:.0f}", "Pedestrian"] + ["-1"] * 14
        cols[13], cols[14], cols[15] = f"{x:.4f}", "-1", f"{y:.4f}"
        lines.append(" ".join(cols) + "\n")
    path.write_text("".join(lines))


def _reference_windows(rows, L):
    """Independent window cutting with dictionaries."""
    tracks = {}
    for f, p, x, y in rows:
        tracks.setdefault(p, {})[int(f)] = (x, y)
    frames = sorted({int(r[0]) for r in rows})
    out = []
    for s in frames:
        need = [s + 10 * k for k in range(L)]
        peds = [p for p in sorted(tracks) if all(n in tracks[p] for n in need)]
        if peds:
            out.append(np.array([[tracks[p][n] for n in need] for p in peds]))
    return out


@pytest.mark.parametrize("writer", [_write4, _write17])
def test_windows_match_reference(tmp_path, writer):
    rows = _tracks(0)
    path = tmp_path / "scene.txt"
    writer(path, rows)
    data = read_trajectory_file(path)
    assert data.shape == (len(rows), 4)
    got = trajectory_windows(data, 8, 12)
    ref = _reference_windows(rows, 20)
    assert len(got) == len(ref) > 0
    for (p, f), r in zip(got, ref):
        np.testing.assert_allclose(torch.cat([p, f], 1).numpy(), r, atol=1e-4)


def test_agentformer_columns_are_13_and_15(tmp_path):
    path = tmp_path / "af.txt"
    _write17(path, [(0, 1, 1.5, -2.5)])
    np.testing.assert_allclose(read_trajectory_file(path)[0], [0, 1, 1.5, -2.5])


def test_bad_files_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1 2.0 3.0\n10 1 2.0\n")
    with pytest.raises(DataError, match=r"bad.txt:2: expected 4 columns"):
        read_trajectory_file(bad)
    bad.write_text("0 1 2.0 3.0\n10 1 x 3.0\n")
    with pytest.raises(DataError, match=r"bad.txt:2: non-numeric"):
        read_trajectory_file(bad)


def test_leave_one_scene_out(tmp_path):
    for i, scene in enumerate(SCENES):
        (tmp_path / scene).mkdir()
        (_write4 if i % 2 else _write17)(tmp_path / scene / f"{scene}.txt", _tracks(i, n_frames=100, n_peds=6))
    dm = ETHUCY(root=str(tmp_path), test_scene="hotel", batch_size=4, val_fraction=0.3)
    dm.setup("fit")
    test_ref = _reference_windows(_tracks(1, n_frames=100, n_peds=6), 20)
    assert len(dm.test_dataset) == len(test_ref)
    item = dm.test_dataset[0]
    np.testing.assert_allclose(item["past"][item["mask"]].numpy(), test_ref[0][:, :8], atol=1e-4)
    batch = next(iter(dm.train_dataloader()))
    assert batch["past"].shape[2:] == (8, 2) and batch["future"].shape[2:] == (12, 2)
    n_train_val = sum(len(_reference_windows(_tracks(i, 100, 6), 20)) for i in (0, 2, 3, 4))
    assert len(dm.train_dataset) + len(dm.val_dataset) <= n_train_val  # windows across the cut are dropped
    assert len(dm.val_dataset) > 0


def test_sgan_split_layout_and_missing_root(tmp_path):
    for split in ("train", "val", "test"):
        (tmp_path / "eth" / split).mkdir(parents=True)
        _write4(tmp_path / "eth" / split / "a.txt", _tracks(7, n_frames=40))
    dm = ETHUCY(root=str(tmp_path), test_scene="eth")
    dm.setup("test")
    assert len(dm.test_dataset) == len(dm.train_dataset) == len(_reference_windows(_tracks(7, 40), 20))
    with pytest.raises(FileNotFoundError, match="data.init_args.root"):
        ETHUCY(root=str(tmp_path / "nope")).setup("fit")
