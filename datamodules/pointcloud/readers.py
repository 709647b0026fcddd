"""Readers of point-cloud files with errors that name the file (and line): txt, h5, meshes via open3d."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visionkit.errors import DataError


def read_table(path: str | Path, columns: int, delimiter: str | None, min_rows: int = 1) -> np.ndarray:
    """Read a numeric text table ``(rows, columns)``; a malformed line raises ``DataError("path:line: ...")``."""
    path = Path(path)
    try:
        arr = np.loadtxt(path, delimiter=delimiter, dtype=np.float64, ndmin=2)
        if arr.shape[1] != columns:
            raise ValueError
    except (ValueError, IndexError):
        _raise_bad_line(path, columns, delimiter)
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    if arr.shape[0] < min_rows:
        raise DataError(f"{path}: {arr.shape[0]} rows, at least {min_rows} needed (truncated file?)")
    if not np.isfinite(arr).all():
        raise DataError(f"{path}: contains non-finite values")
    return arr


def _raise_bad_line(path: Path, columns: int, delimiter: str | None) -> None:
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.strip().split(delimiter)
            if len(fields) != columns:
                raise DataError(f"{path}:{i}: expected {columns} values, got {len(fields)}")
            try:
                [float(v) for v in fields]
            except ValueError:
                raise DataError(f"{path}:{i}: non-numeric value in {line.strip()!r}") from None
    raise DataError(f"{path}: malformed table")


def read_lines(path: str | Path) -> list[str]:
    """Non-empty stripped lines of a list file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: list file not found")
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def read_h5_arrays(path: str | Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Read datasets from an HDF5 file; a missing key or an unreadable (truncated) file names the file."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in keys if k not in f]
            if missing:
                raise DataError(f"{path}: missing dataset(s) {missing}; has {sorted(f.keys())}")
            arrays = {k: np.asarray(f[k]) for k in keys}
    except DataError:
        raise
    except (OSError, KeyError, ValueError) as err:
        raise DataError(f"{path}: cannot read HDF5 ({err})") from None
    for k, arr in arrays.items():
        check_finite(arr, path, k)
    return arrays


def check_finite(arr: np.ndarray, path: str | Path, what: str = "values") -> None:
    """Raise ``DataError`` naming ``path``, ``what`` and the first record (index along axis 0) with NaN or inf."""
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))
        rec = f"record {bad[0][0]}" if arr.ndim > 0 else "scalar"
        raise DataError(f"{path}: {what}: non-finite value in {rec} at index {tuple(int(i) for i in bad[0])} "
                        f"({len(bad)} non-finite values)")


def check_labels(labels: np.ndarray, num_classes: int, path: str | Path, what: str = "label") -> None:
    """Raise ``DataError`` naming ``path`` and the first record whose label lies outside ``0..num_classes-1``."""
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        raise DataError(f"{path}: {what} of record {bad[0]} is {labels[bad[0]]}, outside 0..{num_classes - 1} "
                        f"({len(bad)} records)")


def resample(points: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` rows: the first ``n`` if there are enough, else all plus seeded repeats."""
    m = len(points)
    if m >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.concatenate([np.arange(m), rng.integers(0, m, n - m)])


def read_geometry(path: str | Path, num_points: int, seed: int) -> np.ndarray:
    """Points ``(num_points, 3)`` from a mesh (OFF, OBJ, PLY with faces: area-weighted samples) or a point file
    (PCD, PLY, XYZ, PTS), read through open3d."""
    import open3d as o3d

    from visionkit.datamodules.pointcloud.synthetic import sample_surface

    path = Path(path)
    ext = path.suffix.lower()
    mesh = None
    if ext in (".off", ".obj", ".ply", ".stl", ".gltf", ".glb"):
        mesh = o3d.io.read_triangle_mesh(str(path))
    if mesh is not None and len(mesh.triangles) > 0:
        v, t = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
        if not np.isfinite(v).all() or t.max() >= len(v):
            raise DataError(f"{path}: invalid mesh (non-finite vertices or face indices out of range)")
        return sample_surface([((v, t), 0)], num_points, np.random.default_rng(seed))[0]
    pcd = o3d.io.read_point_cloud(str(path))
    pts = np.asarray(pcd.points)
    if len(pts) == 0:
        raise DataError(f"{path}: no points or faces could be read (empty, truncated or unsupported file)")
    return pts[resample(pts, num_points, seed)]
