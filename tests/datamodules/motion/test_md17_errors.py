"""Broken MD17 ``.npz`` files: each is refused with one message that names the file (and the array or frame)."""

import numpy as np
import pytest

from visionkit.datamodules.motion.md17 import read_md17
from visionkit.errors import DataError


def _arrays(n_frames=200):
    rng = np.random.default_rng(0)
    return {"R": rng.standard_normal((n_frames, 6, 3)), "z": np.array([6, 1, 8, 1, 6, 1]),
            "E": rng.standard_normal((n_frames, 1)), "F": rng.standard_normal((n_frames, 6, 3))}


def _with(**change):
    a = _arrays()
    a.update(change)
    return {k: v for k, v in a.items() if v is not None}


def _nan_frame():
    a = _arrays()
    a["R"][17, 2, 1] = np.nan
    return a


def _truncate(fraction):
    def damage(path):
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
    return damage


BROKEN = {
    "missing R": (_with(R=None), None, "missing array 'R'"),
    "missing z": (_with(z=None), None, "missing array 'z'"),
    "R not 3-d": (_with(R=np.zeros((200, 18))), None, "array 'R' must be (n_frames, n_atoms, 3)"),
    "z atom count": (_with(z=np.array([6, 1, 8])), None, "array 'z' has 3 atoms, 'R' has 6"),
    "E frames": (_with(E=np.zeros((5, 1))), None, "array 'E' has 5 frames"),
    "nan position": (_nan_frame(), None, "array 'R' frame 17: non-finite"),
    "truncated to 90%": (_arrays(), _truncate(0.9), "not a readable .npz archive"),
    "truncated to 30%": (_arrays(), _truncate(0.3), "not a readable .npz archive"),
    "compressed, truncated": ("compressed", _truncate(0.5), "not a readable .npz archive"),
    "not a zip": (_arrays(), lambda p: p.write_bytes(b"PK\x03\x04" + b"\x00" * 64), "not a readable .npz"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_npz_names_the_file(tmp_path, case):
    arrays, damage, expected = BROKEN[case]
    path = tmp_path / "md17_aspirin.npz"
    if arrays == "compressed":
        np.savez_compressed(path, **_arrays())
    else:
        np.savez(path, **arrays)
    if damage is not None:
        damage(path)
    with pytest.raises(DataError) as exc:
        read_md17(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: ") and expected in msg and "\n" not in msg, msg
