"""read_image: uint8 pixels equal to Pillow's decoding, for torchvision's formats and the Pillow fallback."""

import numpy as np
import pytest
import torch
from PIL import Image

from visionkit.errors import DataError
from visionkit.io import read_image


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp"])
def test_lossless_formats_decode_exactly(tmp_path, suffix):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    path = tmp_path / f"x{suffix}"
    Image.fromarray(arr).save(path)
    img = read_image(path)
    assert img.dtype == torch.uint8 and img.shape == (3, 13, 17)
    np.testing.assert_array_equal(img.permute(1, 2, 0).numpy(), arr)
    grey = read_image(path, channels=1)
    ref = np.asarray(Image.open(path).convert("L")).astype(int)
    assert np.abs(grey[0].numpy().astype(int) - ref).max() <= 1  # luminance weights rounded differently


def test_jpeg_matches_pillow_closely_and_bad_files_are_named(tmp_path):
    rng = np.random.default_rng(1)
    arr = np.broadcast_to(rng.integers(0, 256, (1, 1, 3)), (32, 32, 3)).astype(np.uint8)
    path = tmp_path / "x.jpg"
    Image.fromarray(arr).save(path, quality=95)
    ours = read_image(path).permute(1, 2, 0).numpy().astype(int)
    ref = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert np.abs(ours - ref).max() <= 2  # two JPEG decoders may round differently
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match="broken.png"):
        read_image(bad)
