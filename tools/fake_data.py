"""Fake datasets written in the exact on-disk formats of the real-dataset loaders.

Every writer takes a root folder and size arguments, so the same code writes the tiny fixtures of the tests
(a few small files) and the real-size data of ``tools/bench_real_size.py`` (real image sizes, object counts,
points per cloud, atom counts). The content is random but valid: boxes lie inside their images, part labels
belong to their category, pedestrians walk, hands sit in front of the camera. Seeded, so two calls with the
same arguments write the same files.

Formats (see the loaders' module docstrings and ``docs/<family>.md``):

* DOTA: ``<root>/{train,val,test}/images/*.png`` + ``{train,val}/labelTxt/*.txt`` (header + 8 coordinates,
  class, difficult), optional ``<split>/<point_dir>/*.txt`` (``x y class``);
* RSAR: ``<root>/{train,val,test}/images/*.png`` + ``annfiles/*.txt`` (DOTA lines without header);
* DIOR-R: ``JPEGImages-{trainval,test}/*.jpg``, ``Annotations/Oriented Bounding Boxes/*.xml``,
  ``ImageSets/Main/{train,val,test}.txt``, optional ``<point_dir>/*.txt``;
* ModelNet40 h5 (``ply_data_{train,test}*.h5``), ScanObjectNN h5 (``main_split/*.h5``), ShapeNetPart txt + json;
* ETH-UCY 4-column txt per scene, MD17 ``.npz``, H3.6M exp-map txt;
* InterHand2.6M JSON annotations + JPEG frames, MANO model pickles;
* an ImageNet-layout ``ImageFolder`` of JPEGs.

Import from a test or a tool with ``importlib`` (``tools/`` is not a package) or put ``tools/`` on ``sys.path``.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

DOTA_V1_CLASSES = ("plane", "baseball-diamond", "bridge", "ground-track-field", "small-vehicle", "large-vehicle",
                   "ship", "tennis-court", "basketball-court", "storage-tank", "soccer-ball-field", "roundabout",
                   "harbor", "swimming-pool", "helicopter")
RSAR_CLASSES = ("ship", "aircraft", "car", "tank", "bridge", "harbor")
DIOR_CLASSES = ("airplane", "airport", "baseballfield", "basketballcourt", "bridge", "chimney",
                "Expressway-Service-area", "Expressway-toll-station", "dam", "golffield", "groundtrackfield", "harbor",
                "overpass", "ship", "stadium", "storagetank", "tenniscourt", "trainstation", "vehicle", "windmill")
SHAPENET_SYNSETS = {
    "Airplane": "02691156", "Bag": "02773838", "Cap": "02954340", "Car": "02958343", "Chair": "03001627",
    "Earphone": "03261776", "Guitar": "03467517", "Knife": "03624134", "Lamp": "03636649", "Laptop": "03642806",
    "Motorbike": "03790512", "Mug": "03797390", "Pistol": "03948459", "Rocket": "04099429", "Skateboard": "04225987",
    "Table": "04379243",
}
SHAPENET_PARTS = {"Airplane": 4, "Bag": 2, "Cap": 2, "Car": 4, "Chair": 4, "Earphone": 3, "Guitar": 3, "Knife": 2,
                  "Lamp": 4, "Laptop": 2, "Motorbike": 6, "Mug": 2, "Pistol": 3, "Rocket": 3, "Skateboard": 3,
                  "Table": 3}
#: heavy (non-hydrogen) and total atom counts of the MD17 molecules
MD17_ATOMS = {"aspirin": (13, 21), "benzene": (6, 12), "ethanol": (3, 9), "malonaldehyde": (5, 9),
              "naphthalene": (10, 18), "salicylic": (10, 16), "toluene": (7, 15), "uracil": (8, 12)}
ETH_UCY_SCENES = ("eth", "hotel", "univ", "zara1", "zara2")
H36M_ACTIONS = ("walking", "eating", "smoking", "discussion", "directions", "greeting", "phoning", "posing",
                "purchases", "sitting", "sittingdown", "takingphoto", "waiting", "walkingdog", "walkingtogether")
H36M_SUBJECTS = (1, 5, 6, 7, 8, 9, 11)


# ----------------------------------------------------------------------------------------------- images / boxes
def _image(rng: np.random.Generator, H: int, W: int) -> np.ndarray:
    """A smooth random RGB image (compresses like a photo, unlike white noise)."""
    small = rng.integers(0, 256, (max(H // 16, 2), max(W // 16, 2), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((W, H), Image.BILINEAR))


def _save_image(path: Path, arr: np.ndarray, quality: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, quality=quality) if path.suffix.lower() in (".jpg", ".jpeg") else \
        Image.fromarray(arr).save(path)


def random_polygons(rng: np.random.Generator, n: int, H: int, W: int, min_side: float = 6.0,
                    max_side: float = 60.0) -> np.ndarray:
    """``(n, 8)`` corners of random rotated rectangles that lie inside a ``W x H`` image."""
    max_side = min(max_side, 0.45 * min(H, W))
    min_side = min(min_side, max_side / 2)
    w = rng.uniform(min_side, max_side, n)
    h = rng.uniform(min_side, max_side, n) * rng.uniform(0.3, 1.0, n)
    t = rng.uniform(-np.pi / 2, np.pi / 2, n)
    half = 0.5 * (np.abs(w * np.cos(t)) + np.abs(h * np.sin(t))), 0.5 * (np.abs(w * np.sin(t)) + np.abs(h * np.cos(t)))
    cx = rng.uniform(half[0] + 1, W - 1 - half[0])
    cy = rng.uniform(half[1] + 1, H - 1 - half[1])
    dx = np.array([-1, 1, 1, -1])[None] * w[:, None] / 2
    dy = np.array([-1, -1, 1, 1])[None] * h[:, None] / 2
    c, s = np.cos(t)[:, None], np.sin(t)[:, None]
    xs, ys = cx[:, None] + c * dx - s * dy, cy[:, None] + s * dx + c * dy
    return np.stack([xs, ys], -1).reshape(n, 8)


def _object_lines(polys: np.ndarray, names: Sequence[str], difficult: np.ndarray) -> str:
    return "".join(" ".join(f"{v:.1f}" for v in p) + f" {c} {int(d)}\n" for p, c, d in zip(polys, names, difficult))


def _point_lines(polys: np.ndarray, names: Sequence[str]) -> str:
    centres = polys.reshape(-1, 4, 2).mean(1)
    return "".join(f"{x:.2f} {y:.2f} {c}\n" for (x, y), c in zip(centres, names))


def write_dota(root: str | Path, n_images: int = 2, size: int = 64, objects: tuple[int, int] = (2, 4),
               classes: Sequence[str] = DOTA_V1_CLASSES, point_dir: str | None = None, splits: Sequence[str] = (
                   "train", "val", "test"), seed: int = 0) -> Path:
    """A split DOTA folder (as written by ``tools/dota_split.py``): ``n_images`` ``size x size`` PNG patches per
    split with ``objects[0]..objects[1]`` objects each; ``test`` has no labels."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split in splits:
        for k in range(n_images):
            stem = f"P{k:04d}__1024__0___0"
            _save_image(root / split / "images" / f"{stem}.png", _image(rng, size, size))
            n = int(rng.integers(objects[0], objects[1] + 1))
            polys = random_polygons(rng, n, size, size, max_side=max(8.0, size / 10))
            names = [classes[i] for i in rng.integers(0, len(classes), n)]
            if split != "test":
                lab = root / split / "labelTxt" / f"{stem}.txt"
                lab.parent.mkdir(parents=True, exist_ok=True)
                lab.write_text("imagesource:GoogleEarth\ngsd:0.146\n" + _object_lines(polys, names,
                                                                                       rng.random(n) < 0.1))
            if point_dir is not None:
                pts = root / split / point_dir / f"{stem}.txt"
                pts.parent.mkdir(parents=True, exist_ok=True)
                pts.write_text(_point_lines(polys, names))
    return root


def write_rsar(root: str | Path, n_images: int = 2, size: int = 64, objects: tuple[int, int] = (2, 4),
               seed: int = 0) -> Path:
    """RSAR: ``<split>/images/*.png`` (grey SAR-like patches stored as RGB) and ``annfiles/*.txt`` (no header)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split in ("train", "val", "test"):
        for k in range(n_images):
            stem = f"{k:05d}"
            grey = _image(rng, size, size)[..., :1].repeat(3, -1)
            _save_image(root / split / "images" / f"{stem}.png", grey)
            n = int(rng.integers(objects[0], objects[1] + 1))
            polys = random_polygons(rng, n, size, size, max_side=max(8.0, size / 8))
            ann = root / split / "annfiles" / f"{stem}.txt"
            ann.parent.mkdir(parents=True, exist_ok=True)
            ann.write_text(_object_lines(polys, [RSAR_CLASSES[i] for i in rng.integers(0, 6, n)], np.zeros(n)))
    return root


def write_dior_r(root: str | Path, n_images: int = 2, size: int = 64, objects: tuple[int, int] = (2, 4),
                 point_dir: str | None = None, seed: int = 0) -> Path:
    """DIOR-R: ``n_images`` JPEGs for each of train / val / test with their oriented-box XML files."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    ann_dir = root / "Annotations" / "Oriented Bounding Boxes"
    ann_dir.mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    k = 1
    for split in ("train", "val", "test"):
        ids = []
        for _ in range(n_images):
            stem = f"{k:05d}"
            k += 1
            ids.append(stem)
            folder = "JPEGImages-test" if split == "test" else "JPEGImages-trainval"
            _save_image(root / folder / f"{stem}.jpg", _image(rng, size, size))
            n = int(rng.integers(objects[0], objects[1] + 1))
            polys = random_polygons(rng, n, size, size, max_side=max(8.0, size / 8))
            names = [DIOR_CLASSES[i] for i in rng.integers(0, len(DIOR_CLASSES), n)]
            objs = []
            for p, c in zip(polys, names):
                corners = "".join(f"<{a}>{p[2 * j]:.1f}</{a}><{b}>{p[2 * j + 1]:.1f}</{b}>" for j, (a, b) in enumerate(
                    (("x_left_top", "y_left_top"), ("x_right_top", "y_right_top"),
                     ("x_right_bottom", "y_right_bottom"), ("x_left_bottom", "y_left_bottom"))))
                objs.append(f"<object><name>{c}</name><difficult>0</difficult><robndbox>{corners}<angle>0</angle>"
                            "</robndbox></object>")
            (ann_dir / f"{stem}.xml").write_text(
                f"<annotation><filename>{stem}.jpg</filename><size><width>{size}</width><height>{size}</height>"
                f"<depth>3</depth></size>{''.join(objs)}</annotation>")
            if point_dir is not None:
                pts = root / point_dir / f"{stem}.txt"
                pts.parent.mkdir(parents=True, exist_ok=True)
                pts.write_text(_point_lines(polys, [c.lower() for c in names]))
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(i + "\n" for i in ids))
    return root


# ----------------------------------------------------------------------------------------------- point clouds
def _clouds(rng: np.random.Generator, n: int, points: int) -> np.ndarray:
    """``(n, points, 3)`` float32 points on random ellipsoids inside the unit sphere."""
    d = rng.normal(size=(n, points, 3))
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    return (d * rng.uniform(0.3, 1.0, (n, 1, 3))).astype(np.float32)


def write_modelnet40_h5(root: str | Path, num_train: int = 8, num_test: int = 4, points: int = 2048,
                        per_file: int = 2048, seed: int = 0) -> Path:
    """``modelnet40_ply_hdf5_2048``: ``ply_data_{train,test}<k>.h5`` (``data (S, points, 3)``, ``label (S, 1)``)."""
    import h5py

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    (root / "shape_names.txt").write_text("".join(f"class{i:02d}\n" for i in range(40)))
    for split, n in (("train", num_train), ("test", num_test)):
        for f, start in enumerate(range(0, n, per_file)):
            m = min(per_file, n - start)
            with h5py.File(root / f"ply_data_{split}{f}.h5", "w") as h:
                h["data"] = _clouds(rng, m, points)
                h["label"] = rng.integers(0, 40, (m, 1)).astype(np.uint8)
    return root


def write_scanobjectnn(root: str | Path, num_train: int = 8, num_test: int = 4, points: int = 2048,
                       seed: int = 0) -> Path:
    """ScanObjectNN ``h5_files/main_split/{training,test}_objectdataset_augmentedrot_scale75.h5``."""
    import h5py

    root = Path(root)
    (root / "main_split").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, n in (("training", num_train), ("test", num_test)):
        with h5py.File(root / "main_split" / f"{name}_objectdataset_augmentedrot_scale75.h5", "w") as h:
            h["data"] = _clouds(rng, n, points)
            h["label"] = rng.integers(0, 15, n).astype(np.int64)
            h["mask"] = rng.integers(-1, 2, (n, points)).astype(np.int64)
    return root


def write_shapenetpart(root: str | Path, per_split: int = 4, points: int = 2048, seed: int = 0) -> Path:
    """ShapeNetPart (``..._v0_normal``): ``<synset>/<id>.txt`` lines ``x y z nx ny nz part`` and the json splits.

    Shapes cycle through the 16 categories; part labels are the category's global part ids.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    cats = list(SHAPENET_SYNSETS)
    first = np.cumsum([0] + [SHAPENET_PARTS[c] for c in cats])[:-1]
    (root / "train_test_split").mkdir(parents=True, exist_ok=True)
    (root / "synsetoffset2category.txt").write_text("".join(f"{c}\t{s}\n" for c, s in SHAPENET_SYNSETS.items()))
    k = 0
    for split in ("train", "val", "test"):
        entries = []
        for _ in range(per_split):
            ci = k % len(cats)
            synset, sid = SHAPENET_SYNSETS[cats[ci]], f"shape{k:05d}"
            k += 1
            xyz = _clouds(rng, 1, points)[0]
            nrm = xyz / np.linalg.norm(xyz, axis=1, keepdims=True)
            part = first[ci] + rng.integers(0, SHAPENET_PARTS[cats[ci]], points)
            (root / synset).mkdir(exist_ok=True)
            np.savetxt(root / synset / f"{sid}.txt", np.concatenate([xyz, nrm, part[:, None]], 1),
                       fmt=["%.6f"] * 6 + ["%d"])
            entries.append(f"shape_data/{synset}/{sid}")
        (root / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(json.dumps(entries))
    return root


# ----------------------------------------------------------------------------------------------- motion
def write_eth_ucy(root: str | Path, frames: int = 110, peds: tuple[int, int] = (3, 5), extent: float = 12.0,
                  lifetime: tuple[int, int] = (20, 40), seed: int = 0) -> Path:
    """ETH-UCY scene layout: ``<root>/<scene>/<scene>.txt`` for the five scenes, 4 columns ``frame id x y``.

    Frames are numbered in steps of 10 (0.4 s). Pedestrians walk at ~1.3 m/s for ``lifetime`` frames, from a
    random start in a square of side ``extent`` metres towards its far side, so the positions stay within about
    that square (the real scenes span about 15-25 m); new ones enter so that ``peds[0]..peds[1]`` are in the
    scene at any time.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for scene in ETH_UCY_SCENES:
        rows, pid = [], 0
        concurrent = int(rng.integers(peds[0], peds[1] + 1))
        mean_life = (lifetime[0] + lifetime[1]) / 2
        n_total = max(concurrent, int(round(concurrent * (frames + mean_life) / mean_life)))
        for _ in range(n_total):
            life = int(rng.integers(lifetime[0], lifetime[1] + 1))
            first = int(rng.integers(-life + 1, frames))
            t = np.arange(max(first, 0), min(first + life, frames))
            if len(t) == 0:
                continue
            start = rng.uniform(0, extent, 2)
            v = extent / 2 - start + rng.normal(scale=extent / 4, size=2)  # across the square
            v *= 1.3 * 0.4 / np.linalg.norm(v)
            xy = start + v * (t - first)[:, None] + np.cumsum(rng.normal(scale=0.03, size=(len(t), 2)), 0)
            rows += [(10 * f, pid, x, y) for f, (x, y) in zip(t, xy)]
            pid += 1
        (root / scene).mkdir(parents=True, exist_ok=True)
        rows.sort()
        (root / scene / f"{scene}.txt").write_text("".join(f"{f:.1f}\t{i:.1f}\t{x:.3f}\t{y:.3f}\n"
                                                           for f, i, x, y in rows))
    return root


def write_md17(root: str | Path, molecules: Sequence[str] = tuple(MD17_ATOMS), frames: int = 3200,
               seed: int = 0) -> Path:
    """``md17_<molecule>.npz`` with ``R (frames, atoms, 3)`` Å, ``z``, ``E``, ``F`` at the real atom counts."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for mol in molecules:
        heavy, total = MD17_ATOMS[mol]
        z = np.array([6] * heavy + [1] * (total - heavy), dtype=np.int64)
        base = rng.normal(scale=1.5, size=(1, total, 3))
        R = base + 0.05 * np.cumsum(rng.normal(size=(frames, total, 3)), 0) / np.sqrt(np.arange(1, frames + 1))[
            :, None, None]
        np.savez(root / f"md17_{mol}.npz", R=R.astype(np.float64), z=z, E=rng.normal(size=(frames, 1)),
                 F=rng.normal(size=(frames, total, 3)))
    return root


def write_h36m(root: str | Path, frames: int = 80, subjects: Sequence[int] = H36M_SUBJECTS,
               actions: Sequence[str] = H36M_ACTIONS, seed: int = 0) -> Path:
    """H3.6M exp-map release: ``S<k>/<action>_<sub>.txt``, ``frames`` lines of 99 comma-separated values."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for s in subjects:
        (root / f"S{s}").mkdir(parents=True, exist_ok=True)
        for a in actions:
            for sub in (1, 2):
                e = 0.3 * np.sin(np.linspace(0, 6, frames)[:, None] + rng.uniform(0, 6, 99)[None])
                e[:, :3] *= 1000
                np.savetxt(root / f"S{s}" / f"{a}_{sub}.txt", e, fmt="%.6f", delimiter=",")
    return root


# ----------------------------------------------------------------------------------------------- hands
def write_mano(folder: str | Path, seed: int = 0) -> Path:
    """Random ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` with the fields and shapes of the released models."""
    import scipy.sparse

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    parents = [4294967295, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]
    V = 778
    for side, s in (("RIGHT", seed), ("LEFT", seed + 1)):
        rng = np.random.default_rng(s)
        J_reg = rng.random((16, V)) * (rng.random((16, V)) < 0.02)
        J_reg[np.arange(16), rng.integers(0, V, 16)] += 1.0
        J_reg /= J_reg.sum(1, keepdims=True)
        w = rng.random((V, 16)) ** 4
        w /= w.sum(1, keepdims=True)
        # a rest pose of the right handedness: the wrist's vertices at +x, the fingers' towards -x (mirrored left)
        v_template = rng.normal(scale=0.02, size=(V, 3))
        v_template[:, 0] += np.where(J_reg.argmax(0) == 0, 0.1, -0.05) * (1 if side == "RIGHT" else -1)
        data = {"v_template": v_template, "shapedirs": rng.normal(scale=0.01, size=(V, 3, 10)),
                "posedirs": rng.normal(scale=0.01, size=(V, 3, 135)), "J_regressor": scipy.sparse.csc_matrix(J_reg),
                "weights": w, "kintree_table": np.array([parents, list(range(16))], dtype=np.int64),
                "f": rng.integers(0, V, size=(1538, 3)).astype(np.uint32),
                "hands_components": np.linalg.qr(rng.normal(size=(45, 45)))[0],
                "hands_mean": rng.normal(scale=0.2, size=45)}
        with open(folder / f"MANO_{side}.pkl", "wb") as fh:
            pickle.dump(data, fh, protocol=2)
    return folder


def write_interhand(root: str | Path, frames: int = 2, splits: Sequence[str] = ("train", "val", "test"),
                    width: int = 334, height: int = 512, cameras: int = 1, seed: int = 0) -> Path:
    """InterHand2.6M: ``images/<split>/Capture<c>/<seq>/cam<id>/image<frame>.jpg`` and the four annotation
    files ``annotations/<split>/InterHand2.6M_<split>_{data,camera,joint_3d,MANO_NeuralAnnot}.json``.

    Every frame is an interacting two-hand frame with both MANO fits, seen by ``cameras`` cameras
    (``frames * cameras`` samples per split); the real images are 334 x 512.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    cap, seq = "0", "0001_interaction"
    for split in splits:
        images, annotations, joint3d, mano = [], [], {cap: {}}, {cap: {}}
        camera = {cap: {"campos": {}, "camrot": {}, "focal": {}, "princpt": {}}}
        cams = [str(400262 + c) for c in range(cameras)]
        for cam in cams:
            a = rng.uniform(-0.3, 0.3)
            R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
            camera[cap]["campos"][cam] = rng.normal(scale=50, size=3).tolist()
            camera[cap]["camrot"][cam] = R.tolist()
            camera[cap]["focal"][cam] = [1200.0, 1200.0]
            camera[cap]["princpt"][cam] = [width / 2, height / 2]
        for f in range(frames):
            frame = str(20000 + f)
            world = np.concatenate([rng.normal([30, 0, 600], 25, (21, 3)), rng.normal([-30, 10, 600], 25, (21, 3))])
            joint3d[cap][frame] = {"world_coord": world.tolist(), "joint_valid": [[1]] * 42,
                                   "hand_type": "interacting", "hand_type_valid": True}
            fit = {side: {"pose": rng.normal(scale=0.3, size=48).tolist(), "shape": rng.normal(size=10).tolist(),
                          "trans": rng.normal(scale=0.05, size=3).tolist()} for side in ("right", "left")}
            mano[cap][frame] = fit
            for cam in cams:
                k = len(images)
                fname = f"Capture{cap}/{seq}/cam{cam}/image{frame}.jpg"
                images.append({"id": k, "file_name": fname, "width": width, "height": height,
                               "capture": int(cap), "subject": 0, "seq_name": seq, "camera": cam,
                               "frame_idx": int(frame)})
                annotations.append({"id": k, "image_id": k, "bbox": [50.0, 60.0, 200.0, 250.0],
                                    "joint_valid": [[1]] * 42, "hand_type": "interacting", "hand_type_valid": 1})
                _save_image(root / "images" / split / fname, _image(rng, height, width))
        ann_dir = root / "annotations" / split
        ann_dir.mkdir(parents=True, exist_ok=True)
        for kind, obj in (("data", {"images": images, "annotations": annotations}), ("camera", camera),
                          ("joint_3d", joint3d), ("MANO_NeuralAnnot", mano)):
            (ann_dir / f"InterHand2.6M_{split}_{kind}.json").write_text(json.dumps(obj))
    return root


# ----------------------------------------------------------------------------------------------- images
def write_image_folder(root: str | Path, classes: int = 3, per_class: int = 2, size: int = 32,
                       splits: Sequence[str] = ("train", "val"), seed: int = 0) -> Path:
    """ImageNet layout: ``<root>/<split>/<wnid>/<wnid>_<k>.JPEG`` (``size x size`` RGB JPEGs)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split in splits:
        for c in range(classes):
            wnid = f"n{c:08d}"
            for k in range(per_class):
                _save_image(root / split / wnid / f"{wnid}_{k}.JPEG", _image(rng, size, size))
    return root


__all__ = [
    "random_polygons", "write_dior_r", "write_dota", "write_eth_ucy", "write_h36m", "write_image_folder",
    "write_interhand", "write_mano", "write_md17", "write_modelnet40_h5", "write_rsar", "write_scanobjectnn",
    "write_shapenetpart",
]
