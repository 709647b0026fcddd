"""File input and output: atomic writes (a crash never leaves a half-written file) and safe ``torch.load``."""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file next to ``path`` and move it over ``path`` on success.

    Args:
        path: final destination; its parent folders are created.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        **kwargs: passed to :func:`open` (e.g. ``encoding``, ``newline``).

    Yields:
        The open temporary file. If the block raises, the temporary file is removed and ``path`` is untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


#: classes, besides tensors and plain containers, that a checkpoint written by visionkit may hold
SAFE_GLOBALS: list[type] = [pathlib.PurePosixPath, pathlib.PosixPath, pathlib.PureWindowsPath, pathlib.WindowsPath]


def register_safe_globals(*classes: type) -> None:
    """Allow ``classes`` in checkpoints loaded with :func:`load_torch` (e.g. a plugin's hyperparameter type)."""
    for cls in classes:
        if cls not in SAFE_GLOBALS:
            SAFE_GLOBALS.append(cls)


def load_torch(path: str | os.PathLike | IO[bytes], map_location: Any = "cpu", trust: bool = False) -> Any:
    """Load a ``torch.save`` file without running code from it unless ``trust`` is set.

    With ``trust=False`` (the default) the file is read with ``weights_only=True``: tensors, numbers, strings,
    containers and the classes in :data:`SAFE_GLOBALS` only. A file that needs any other class (a pickled
    object, possibly a planted payload) raises :class:`~visionkit.errors.CheckpointError` naming the file and
    the class; ``trust=True`` (``--trust_checkpoint`` on the command line) unpickles it fully, which runs
    whatever code the file contains: use it only for files you made yourself.

    Args:
        path: file path or binary file object.
        map_location: as in :func:`torch.load`.
        trust: allow full unpickling.

    Returns:
        The loaded object.
    """
    import pickle

    import torch

    from visionkit.errors import CheckpointError

    if trust:
        return torch.load(path, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        name = path if isinstance(path, str | os.PathLike) else getattr(path, "name", "<stream>")
        culprit = re.search(r"(?:Unsupported global|unsupported GLOBAL|global) ?:? ?(?:GLOBAL )?([\w.]+)", str(err))
        what = f"the class {culprit.group(1)}" if culprit else "objects other than tensors and plain values"
        raise CheckpointError(
            f"{name}: refusing to unpickle {what} (loading it could run code from the file); if you made this "
            "file yourself, pass --trust_checkpoint true") from None


def image_to_float(x: Any) -> Any:
    """A uint8 image tensor (or a list of them), as :func:`read_image` gives, as float32 in [0, 1]; anything else
    unchanged."""
    import torch

    if torch.is_tensor(x) and x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if isinstance(x, list):
        return [image_to_float(v) for v in x]
    return x


def read_image(path: str | os.PathLike, channels: int = 3) -> Any:
    """Decode an image file to a uint8 tensor ``(channels, H, W)``.

    torchvision's ``decode_image`` (PNG, JPEG, GIF, WebP) keeps the pixels uint8 until the caller converts
    them; other formats (TIFF, BMP, ...) fall back to Pillow. A file that cannot be decoded raises
    :class:`~visionkit.errors.DataError` naming it.

    Args:
        path: image file.
        channels: 3 (RGB) or 1 (grey).
    """
    import torch
    from torchvision.io import ImageReadMode, decode_image

    from visionkit.errors import DataError

    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    try:
        return decode_image(str(path), mode=mode)
    except (RuntimeError, ValueError):
        pass  # not a format torchvision decodes: try Pillow
    try:
        import numpy as np
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB" if channels == 3 else "L")).copy()
    except OSError as err:
        raise DataError(f"{path}: cannot read image ({err})") from err
    t = torch.from_numpy(arr)
    return t.permute(2, 0, 1).contiguous() if t.dim() == 3 else t[None]
