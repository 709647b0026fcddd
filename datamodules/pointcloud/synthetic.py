"""SyntheticPrimitives: point clouds sampled from open3d primitive meshes, for classification or parts.

Every shape is built upright (``z`` up) with random proportions, stretched by a random per-axis aspect,
sampled uniformly on its surface (area-weighted triangles), centred and scaled into the unit ball. Generation
is seeded per split and cached as ``.npz`` in ``cache_dir``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from visionkit.datamodules.pointcloud.common import PointCloudDataModule, PointCloudDataset
from visionkit.io import atomic_open

PRIMITIVES = (
    "box",
    "sphere",
    "cylinder",
    "cone",
    "torus",
    "arrow",
    "octahedron",
    "icosahedron",
    "tetrahedron",
    "mobius",
)

#: part-labelled categories and their parts (global part ids are assigned in this order)
PART_CATEGORIES: dict[str, tuple[str, ...]] = {
    "arrow": ("shaft", "head"),
    "table": ("top", "legs"),
    "lamp": ("base", "pole", "shade"),
    "dumbbell": ("bar", "weights"),
}

Mesh = tuple[np.ndarray, np.ndarray]  # vertices (V, 3), triangles (T, 3)


def _o3d():
    import open3d as o3d  # imported lazily: only generation needs it

    return o3d.geometry.TriangleMesh


def _arrays(mesh, offset: Sequence[float] = (0.0, 0.0, 0.0)) -> Mesh:
    return np.asarray(mesh.vertices, dtype=np.float64) + np.asarray(offset), np.asarray(mesh.triangles)


def primitive_mesh(name: str, rng: np.random.Generator) -> Mesh:
    """An upright primitive with random proportions (before the aspect stretch)."""
    T = _o3d()
    u = rng.uniform
    if name == "box":
        m = T.create_box(u(0.5, 1.5), u(0.5, 1.5), u(0.5, 1.5))
    elif name == "sphere":
        m = T.create_sphere(1.0, resolution=12)
    elif name == "cylinder":
        m = T.create_cylinder(u(0.3, 0.6), u(0.9, 2.0), resolution=24)
    elif name == "cone":
        m = T.create_cone(u(0.4, 0.8), u(0.9, 2.0), resolution=24)
    elif name == "torus":
        m = T.create_torus(1.0, u(0.2, 0.45), radial_resolution=24, tubular_resolution=12)
    elif name == "arrow":
        m = T.create_arrow(u(0.1, 0.2), u(0.28, 0.4), u(1.0, 1.6), u(0.4, 0.8), resolution=16)
    elif name == "octahedron":
        m = T.create_octahedron(1.0)
    elif name == "icosahedron":
        m = T.create_icosahedron(1.0)
    elif name == "tetrahedron":
        m = T.create_tetrahedron(1.0)
    elif name == "mobius":
        m = T.create_mobius(length_split=60, width_split=8, twists=1, radius=1.0, width=u(0.5, 0.9))
    else:
        raise ValueError(f"data.init_args.classes: unknown primitive {name!r}; known: {', '.join(PRIMITIVES)}")
    return _arrays(m)


def part_meshes(name: str, rng: np.random.Generator) -> list[tuple[Mesh, int]]:
    """An upright part-labelled object: meshes with their local part index."""
    T = _o3d()
    u = rng.uniform
    if name == "arrow":
        h = u(1.0, 1.6)
        return [
            (_arrays(T.create_cylinder(u(0.1, 0.2), h, 16), (0, 0, h / 2)), 0),
            (_arrays(T.create_cone(u(0.28, 0.45), u(0.4, 0.8), 16), (0, 0, h)), 1),
        ]
    if name == "table":
        w, d, h, r = u(1.2, 2.0), u(0.8, 1.4), u(0.6, 1.0), u(0.04, 0.08)
        top = (_arrays(T.create_box(w, d, 0.08), (-w / 2, -d / 2, h)), 0)
        legs = [
            (_arrays(T.create_cylinder(r, h, 8), (sx * (w / 2 - 0.1), sy * (d / 2 - 0.1), h / 2)), 1)
            for sx in (-1, 1)
            for sy in (-1, 1)
        ]
        return [top, *legs]
    if name == "lamp":
        h = u(1.0, 1.6)
        return [
            (_arrays(T.create_cylinder(u(0.3, 0.5), 0.08, 24), (0, 0, 0.04)), 0),
            (_arrays(T.create_cylinder(u(0.03, 0.06), h, 8), (0, 0, h / 2)), 1),
            (_arrays(T.create_cone(u(0.35, 0.6), u(0.3, 0.5), 24), (0, 0, h - 0.1)), 2),
        ]
    if name == "dumbbell":
        L, rr = u(1.0, 1.8), u(0.25, 0.4)
        bar = T.create_cylinder(u(0.05, 0.1), L, 12)
        v = np.asarray(bar.vertices)[:, [2, 1, 0]]  # lay the bar along x
        bar_mesh = (v, np.asarray(bar.triangles)[:, [0, 2, 1]])
        return [
            (bar_mesh, 0),
            (_arrays(T.create_sphere(rr, 10), (-L / 2, 0, 0)), 1),
            (_arrays(T.create_sphere(rr, 10), (L / 2, 0, 0)), 1),
        ]
    raise ValueError(f"data.init_args.classes: unknown part category {name!r}; known: {', '.join(PART_CATEGORIES)}")


def sample_surface(
    meshes: Sequence[tuple[Mesh, int]], n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uniform surface samples of a union of meshes.

    Returns:
        points ``(n, 3)``, unit face normals ``(n, 3)`` and the part index of every point ``(n,)``.
    """
    tris, parts = [], []
    for (v, t), part in meshes:
        tris.append(v[t])  # (T, 3 corners, 3)
        parts.append(np.full(len(t), part))
    tri = np.concatenate(tris)
    part = np.concatenate(parts)
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = np.linalg.norm(cross, axis=-1)
    f = rng.choice(len(tri), size=n, p=area / area.sum())
    a, b = rng.random((2, n, 1))
    flip = (a + b) > 1
    a, b = np.where(flip, 1 - a, a), np.where(flip, 1 - b, b)
    p = tri[f, 0] + a * (tri[f, 1] - tri[f, 0]) + b * (tri[f, 2] - tri[f, 0])
    nrm = cross[f] / np.maximum(area[f, None], 1e-12)
    return p, nrm, part[f]


def generate_primitives(
    classes: Sequence[str],
    count: int,
    num_points: int,
    seed: int,
    aspect: tuple[float, float] = (0.75, 1.33),
    parts: bool = False,
) -> dict[str, np.ndarray]:
    """Generate ``count`` shapes with balanced classes (classification) or categories (parts).

    Returns:
        ``points (S, N, 3)`` float32, ``normals (S, N, 3)``, ``label (S,)`` and, for parts, ``seg (S, N)`` with
        global part ids and ``category (S,)``.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(classes)
    rng.shuffle(labels)
    offsets = np.cumsum([0] + [len(PART_CATEGORIES[c]) for c in classes]) if parts else None
    pts, nrms, segs = [], [], []
    for lab in labels:
        name = classes[lab]
        meshes = part_meshes(name, rng) if parts else [(primitive_mesh(name, rng), 0)]
        p, n, s = sample_surface(meshes, num_points, rng)
        stretch = rng.uniform(*aspect, size=3)
        p = p * stretch
        n = n / stretch  # normals transform with the inverse transpose
        n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
        p = p - p.mean(0)
        p /= np.sqrt((p**2).sum(-1)).max()
        pts.append(p)
        nrms.append(n)
        segs.append(s + (offsets[lab] if parts else 0))
    out = {
        "points": np.stack(pts).astype(np.float32),
        "normals": np.stack(nrms).astype(np.float32),
        "label": labels.astype(np.int64),
    }
    if parts:
        out["seg"] = np.stack(segs).astype(np.int64)
        out["category"] = labels.astype(np.int64)
    return out


class SyntheticPrimitives(PointCloudDataModule):
    """Primitive shapes for classification (``task: classification``) or part segmentation (``task: parts``).

    Classes (classification): box, sphere, cylinder, cone, torus, arrow, octahedron, icosahedron, tetrahedron,
    mobius. Part categories: arrow (shaft, head), table (top, legs), lamp (base, pole, shade), dumbbell (bar,
    weights): 4 categories, 9 parts. Shapes are upright (``z`` up), as the aligned real datasets.

    Args:
        task: ``classification`` or ``parts``.
        classes: subset of the classes/categories to use (default: all).
        num_points: points per cloud.
        num_train: training shapes (classes balanced).
        num_val: validation shapes.
        num_test: test shapes.
        aspect: range of the random per-axis stretch.
        data_seed: seed of the generated shapes (splits use different derived seeds).
        cache_dir: folder where the generated arrays are cached (None: no cache).
        **kwargs: :class:`~visionkit.datamodules.pointcloud.common.PointCloudDataModule` arguments.

    Attributes:
        num_classes: classes, or parts for ``task: parts``; ``num_categories``; ``parts_per_category``.
    """

    def __init__(
        self,
        task: Literal["classification", "parts"] = "classification",
        classes: list[str] | None = None,
        num_points: int = 512,
        num_train: int = 2000,
        num_val: int = 400,
        num_test: int = 800,
        aspect: tuple[float, float] = (0.75, 1.33),
        data_seed: int = 0,
        cache_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if task not in ("classification", "parts"):
            raise ValueError(f"data.init_args.task: expected classification or parts, got {task!r}")
        known = PRIMITIVES if task == "classification" else tuple(PART_CATEGORIES)
        self.classes = list(classes or known)
        bad = [c for c in self.classes if c not in known]
        if bad:
            raise ValueError(f"data.init_args.classes: unknown {task} classes {bad}; known: {', '.join(known)}")
        self.task, self.num_points, self.aspect = task, num_points, tuple(aspect)
        self.counts = {"train": num_train, "val": num_val, "test": num_test}
        self.data_seed, self.cache_dir = data_seed, cache_dir
        if task == "parts":
            self.parts_per_category = [len(PART_CATEGORIES[c]) for c in self.classes]
            self.num_classes = sum(self.parts_per_category)
            self.num_categories = len(self.classes)
        else:
            self.parts_per_category = None
            self.num_classes = len(self.classes)
            self.num_categories = 0

    def generate(self, split: str) -> dict[str, np.ndarray]:
        """The arrays of one split, from the cache when present."""
        seed = self.data_seed * 1000 + {"train": 0, "val": 1, "test": 2}[split]
        spec = dict(
            task=self.task,
            classes=self.classes,
            n=self.counts[split],
            points=self.num_points,
            seed=seed,
            aspect=list(self.aspect),
            version=1,
        )
        key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        name = f"primitives_{self.task}_{split}_{key}.npz"
        path = Path(self.cache_dir).expanduser() / name if self.cache_dir else None
        if path is not None and path.is_file():
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        data = generate_primitives(
            self.classes, self.counts[split], self.num_points, seed, self.aspect, parts=self.task == "parts"
        )
        if path is not None:
            with atomic_open(path, "wb") as f:
                np.savez(f, **data)
        return data

    def _dataset(self, split: str) -> PointCloudDataset:
        d = self.generate(split)
        return PointCloudDataset(d["points"], d["label"], d.get("seg"), d.get("category"), d["normals"])

    def setup(self, stage: str | None = None) -> None:
        make: Callable[[str], PointCloudDataset] = self._dataset
        if stage in ("fit", None) and self.train_dataset is None:
            self.train_dataset = make("train")
        if stage in ("fit", "validate", None) and self.val_dataset is None:
            self.val_dataset = make("val")
        if stage in ("test", "predict", None) and self.test_dataset is None:
            self.test_dataset = make("test")
