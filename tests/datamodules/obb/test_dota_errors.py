"""Broken DOTA split folders: each is refused with the file (and line) named."""

import numpy as np
import pytest
from PIL import Image

from visionkit.datamodules.obb.dota import DOTADataset
from visionkit.errors import DataError, DatasetNotFoundError

GOOD = "10 10 30 10 30 20 10 20 plane 0\n"


def _split(root, labels: dict[str, str | bytes], images=("a", "b")):
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    for stem in images:
        Image.fromarray(np.zeros((32, 40, 3), np.uint8)).save(root / "images" / f"{stem}.png")
    for stem, text in labels.items():
        path = root / "labelTxt" / f"{stem}.txt"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())


BROKEN = {
    "label without image": ({"a": GOOD, "b": GOOD, "c": GOOD}, "c.txt", "has no image"),
    "image without label": ({"a": GOOD}, "b.txt", "no annotation file"),
    "short line": ({"a": GOOD, "b": "10 10 30 10 plane\n"}, "b.txt:1", "expected 8 coordinates"),
    "nan coordinate": ({"a": GOOD, "b": GOOD + "nan 10 30 10 30 20 10 20 plane 0\n"}, "b.txt:2", "non-finite"),
    "unknown class": ({"a": GOOD, "b": "10 10 30 10 30 20 10 20 zeppelin 0\n"}, "b.txt:1", "unknown class"),
    "not utf-8": ({"a": GOOD, "b": b"\xff\xfe\x00 plane"}, "b.txt", "not a UTF-8 text file"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_split_names_the_file(tmp_path, case):
    labels, culprit, expected = BROKEN[case]
    _split(tmp_path / "train", labels)
    with pytest.raises((DataError, DatasetNotFoundError)) as exc:
        ds = DOTADataset(tmp_path / "train")
        for i in range(len(ds)):
            ds[i]
    msg = str(exc.value)
    assert culprit in msg and expected in msg and "\n" not in msg, msg
