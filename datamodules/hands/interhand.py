"""InterHand2.6M: two-hand images with 3D joints and MANO fits, read from the official JSON files.

Layout on disk (as distributed)::

    root/images/{split}/Capture*/<seq>/cam<id>/image<frame>.jpg
    root/annotations/{split}/InterHand2.6M_{split}_data.json        COCO-style images + annotations
    root/annotations/{split}/InterHand2.6M_{split}_camera.json      [capture][campos|camrot|focal|princpt][camera]
    root/annotations/{split}/InterHand2.6M_{split}_joint_3d.json    [capture][frame]["world_coord"] 42 x 3, mm
    root/annotations/{split}/InterHand2.6M_{split}_MANO_NeuralAnnot.json  [capture][frame][right|left]

(``root/annotations/InterHand2.6M_{split}_*.json`` without the split folder also works.) Camera coordinates
are ``x_cam = camrot · (x_world − campos)`` in mm; pixels ``u = fx x / z + cx``. Joints: right 0-20, left
21-41, wrist last per hand (the visionkit order). Each sample is a square crop around both hands (the joints'
2D box grown by ``bbox_scale``), resized to ``image_size``, with the intrinsics updated to the crop.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from visionkit.datamodules.base import BaseDataModule
from visionkit.errors import DataError, DatasetNotFoundError


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise DatasetNotFoundError(f"data.init_args.root: {path} does not exist")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from e


def _annotation_file(root: Path, split: str, kind: str) -> Path:
    name = f"InterHand2.6M_{split}_{kind}.json"
    nested = root / "annotations" / split / name
    return nested if nested.is_file() else root / "annotations" / name


_HAND_TYPES = ("right", "left", "interacting")
_HAND_TYPE_VECTOR = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]], dtype=np.float32)  # last: other
_FIT_SIZES = {"pose": 48, "shape": 10, "trans": 3}


class InterHandDataset(Dataset):
    """Samples of one InterHand2.6M split.

    Annotations are kept compact: one numpy array per field over all samples (``world (N, 42, 3)`` float32 mm,
    ``joint_valid (N, 42)`` bool, ``camera (N,)`` index into per-camera tables ``cam_R (C, 3, 3)``, ``cam_pos
    (C, 3)``, ``cam_focal (C, 2)``, ``cam_princpt (C, 2)``, ``hand_type (N,)`` int8, MANO ``pose (N, 2, 48)``,
    ``shape (N, 2, 10)``, ``trans (N, 2, 3)`` float32, ``mano_valid (N, 2)`` bool and ``file (N,)`` bytes),
    not a dict per sample: :meth:`annotation_bytes` reports their size.

    Malformed annotations raise a :class:`~visionkit.errors.DataError` naming the file and the record (an
    annotation without ``id`` or ``hand_type``, a MANO fit without ``pose``/``shape``/``trans`` or of the wrong
    size, non-finite world coordinates); with ``interacting_only`` a split without its MANO JSON, or whose
    records all fall out, raises instead of giving an empty dataset.

    Args:
        root: dataset root (``images/`` and ``annotations/`` inside).
        split: ``"train"``, ``"val"`` or ``"test"``.
        image_size: side of the square crop in pixels (paper: 256).
        interacting_only: keep only ``interacting`` frames whose two MANO fits exist (the DIR protocol);
            otherwise keep every annotation (single hands too; missing fits get ``mano_valid = 0``).
        bbox_scale: growth of the two-hand 2D joint box before cropping.
    """

    def __init__(self, root: str | Path, split: str = "train", image_size: int = 256, interacting_only: bool = True,
                 bbox_scale: float = 1.5) -> None:
        self.root, self.split, self.image_size, self.bbox_scale = Path(root), split, image_size, bbox_scale
        data_path = _annotation_file(self.root, split, "data")
        cam_path = _annotation_file(self.root, split, "camera")
        joint_path = _annotation_file(self.root, split, "joint_3d")
        mano_path = _annotation_file(self.root, split, "MANO_NeuralAnnot")
        data, cams, joints = _load_json(data_path), _load_json(cam_path), _load_json(joint_path)
        if mano_path.is_file():
            mano = _load_json(mano_path)
        elif interacting_only:
            raise DatasetNotFoundError(f"data.init_args.root: {mano_path} does not exist; interacting_only keeps "
                                       "frames with both MANO fits, so the split needs its MANO_NeuralAnnot JSON "
                                       "(or set data.init_args.interacting_only: false)")
        else:
            mano = {}
        for key in ("images", "annotations"):
            if key not in data:
                raise DataError(f"{data_path}: missing top-level key {key!r}")
        images = {}
        for k, img in enumerate(data["images"]):
            for key in ("id", "capture", "camera", "frame_idx", "file_name"):
                if key not in img:
                    raise DataError(f"{data_path}: images[{k}] (id {img.get('id')}): missing {key!r}")
            images[img["id"]] = img
        camera_index: dict[tuple[str, str], int] = {}
        cam_R, cam_pos, cam_focal, cam_princpt = [], [], [], []
        cols: dict[str, list[Any]] = {k: [] for k in ("world", "valid", "camera", "hand_type", "pose", "shape",
                                                      "trans", "mano_valid", "file")}
        n_interacting = 0
        for k, ann in enumerate(data["annotations"]):
            for key in ("id", "image_id", "hand_type"):
                if key not in ann:
                    raise DataError(f"{data_path}: annotations[{k}] (id {ann.get('id')}): missing {key!r}")
            where = f"{data_path}: annotation id {ann['id']}"
            img = images.get(ann["image_id"])
            if img is None:
                raise DataError(f"{where}: image_id {ann['image_id']} not in 'images'")
            cap, cam, frame = str(img["capture"]), str(img["camera"]), str(img["frame_idx"])
            fits = mano.get(cap, {}).get(frame) or {}
            has = [fits.get("right") is not None, fits.get("left") is not None]
            n_interacting += ann["hand_type"] == "interacting"
            if interacting_only and (ann["hand_type"] != "interacting" or not all(has)):
                continue
            if (cap, cam) not in camera_index:
                try:
                    c = cams[cap]
                    R = np.asarray(c["camrot"][cam], dtype=np.float64).reshape(3, 3)
                    t = np.asarray(c["campos"][cam], dtype=np.float64).reshape(3)
                    f = np.asarray(c["focal"][cam], dtype=np.float64).reshape(2)
                    pp = np.asarray(c["princpt"][cam], dtype=np.float64).reshape(2)
                except (KeyError, ValueError, TypeError) as e:
                    raise DataError(f"{cam_path}: capture {cap} camera {cam}: missing or malformed ({e})") from e
                camera_index[cap, cam] = len(cam_R)
                cam_R.append(R), cam_pos.append(t), cam_focal.append(f), cam_princpt.append(pp)
            try:
                world = np.asarray(joints[cap][frame]["world_coord"], dtype=np.float64)
            except (KeyError, TypeError) as e:
                raise DataError(f"{joint_path}: capture {cap} frame {frame}: no world_coord") from e
            except ValueError as e:
                raise DataError(f"{joint_path}: capture {cap} frame {frame}: malformed world_coord ({e})") from e
            valid = np.asarray(ann.get("joint_valid", []), dtype=np.float64).reshape(-1)
            if world.shape != (42, 3) or valid.shape != (42,):
                raise DataError(f"{where}: expected 42 joints, got world_coord {world.shape}, "
                                f"joint_valid {valid.shape}")
            bad = np.flatnonzero(~np.isfinite(world).all(1))
            if bad.size:
                raise DataError(f"{joint_path}: capture {cap} frame {frame}: non-finite world_coord at joints "
                                f"{bad.tolist()}")
            params = np.zeros((3, 2), dtype=object)
            for h, side in enumerate(("right", "left")):
                for j, (key, n) in enumerate(_FIT_SIZES.items()):
                    if has[h]:
                        if key not in fits[side]:
                            raise DataError(f"{mano_path}: capture {cap} frame {frame} {side}: missing {key!r}")
                        v = np.asarray(fits[side][key], dtype=np.float32).reshape(-1)
                        if v.shape != (n,) or not np.isfinite(v).all():
                            raise DataError(f"{mano_path}: capture {cap} frame {frame} {side}: {key!r} has "
                                            f"{v.size} values (finite: {bool(np.isfinite(v).all())}), expected "
                                            f"{n} finite")
                    else:
                        v = np.zeros(n, dtype=np.float32)
                    params[j, h] = v
            cols["world"].append(world.astype(np.float32))
            cols["valid"].append(valid > 0)
            cols["camera"].append(camera_index[cap, cam])
            ht = ann["hand_type"]
            cols["hand_type"].append(_HAND_TYPES.index(ht) if ht in _HAND_TYPES else len(_HAND_TYPES))
            for j, key in enumerate(_FIT_SIZES):
                cols[key].append(np.stack(params[j]))
            cols["mano_valid"].append(has)
            cols["file"].append(str(img["file_name"]).encode())
        if not cols["world"]:
            raise DataError(f"{data_path}: no samples left in split {split!r}: {len(data['annotations'])} "
                            f"annotations, {n_interacting} interacting, none with both MANO fits in {mano_path.name}"
                            if interacting_only else f"{data_path}: no annotations in split {split!r}")
        self.world = np.stack(cols["world"])  # (N, 42, 3) float32 mm
        self.joint_valid = np.stack(cols["valid"])  # (N, 42) bool
        self.camera = np.asarray(cols["camera"], dtype=np.int32)
        self.hand_type = np.asarray(cols["hand_type"], dtype=np.int8)
        self.mano_pose, self.mano_shape, self.mano_trans = (np.stack(cols[k]) for k in ("pose", "shape", "trans"))
        self.mano_valid = np.asarray(cols["mano_valid"], dtype=bool)
        self.file = np.asarray(cols["file"], dtype=np.bytes_)
        self.cam_R, self.cam_pos = np.stack(cam_R), np.stack(cam_pos)
        self.cam_focal, self.cam_princpt = np.stack(cam_focal), np.stack(cam_princpt)

    def __len__(self) -> int:
        return len(self.world)

    def annotation_bytes(self) -> int:
        """Bytes held by the annotation arrays (per-sample fields and camera tables)."""
        return sum(a.nbytes for a in (self.world, self.joint_valid, self.camera, self.hand_type, self.mano_pose,
                                      self.mano_shape, self.mano_trans, self.mano_valid, self.file, self.cam_R,
                                      self.cam_pos, self.cam_focal, self.cam_princpt))

    def crop_box(self, uv: np.ndarray, valid: np.ndarray) -> tuple[float, float, float]:
        """Square box ``(x0, y0, side)`` around the valid 2D joints, grown by ``bbox_scale``."""
        pts = uv[valid > 0] if (valid > 0).any() else uv
        lo, hi = pts.min(0), pts.max(0)
        centre = (lo + hi) / 2
        side = max(float((hi - lo).max()) * self.bbox_scale, 1.0)
        return float(centre[0] - side / 2), float(centre[1] - side / 2), side

    def __getitem__(self, i: int) -> dict[str, Any]:
        from PIL import Image

        c = int(self.camera[i])
        R, focal, princpt = self.cam_R[c], self.cam_focal[c], self.cam_princpt[c]
        valid = self.joint_valid[i].astype(np.float64)
        cam = (self.world[i].astype(np.float64) - self.cam_pos[c]) @ R.T  # (42, 3) mm, camera space
        uv = cam[:, :2] / cam[:, 2:] * focal + princpt
        x0, y0, side = self.crop_box(uv, valid)
        S = self.image_size
        scale = S / side
        file = self.root / "images" / self.split / self.file[i].decode()
        if not file.is_file():
            raise DatasetNotFoundError(f"data.init_args.root: image {file} does not exist")
        with Image.open(file) as im:
            # output pixel (x, y) samples the input at (x / scale + x0, y / scale + y0); outside is black
            crop = im.convert("RGB").transform((S, S), Image.AFFINE, (1 / scale, 0, x0, 0, 1 / scale, y0),
                                               resample=Image.BILINEAR)
        image = torch.from_numpy(np.array(crop, dtype=np.uint8)).permute(2, 0, 1)  # float on the device
        K = np.array([[focal[0] * scale, 0, (princpt[0] - x0) * scale],
                      [0, focal[1] * scale, (princpt[1] - y0) * scale], [0, 0, 1]])
        f32 = torch.float32
        return {
            "image": image,
            "joints3d": torch.as_tensor(cam, dtype=f32),
            "joints2d": torch.as_tensor((uv - [x0, y0]) * scale, dtype=f32),
            "K": torch.as_tensor(K, dtype=f32),
            "hand_type": torch.from_numpy(_HAND_TYPE_VECTOR[self.hand_type[i]]),
            "joint_valid": torch.as_tensor(valid, dtype=f32),
            "mano_pose": torch.from_numpy(self.mano_pose[i]),
            "mano_shape": torch.from_numpy(self.mano_shape[i]),
            "mano_trans": torch.from_numpy(self.mano_trans[i]),
            "mano_valid": torch.as_tensor(self.mano_valid[i], dtype=f32),
            "cam_R": torch.as_tensor(R, dtype=f32),
        }


class InterHand26M(BaseDataModule):
    """InterHand2.6M datamodule (official JSON annotations, see the module docstring for the layout).

    Args:
        root: dataset root; config key ``data.init_args.root``.
        image_size: crop side in pixels (paper: 256).
        interacting_only: keep interacting frames with both MANO fits (the DIR protocol).
        bbox_scale: growth of the two-hand box before cropping.
        train_split, val_split, test_split: split names on disk.
        **kwargs: ``batch_size``, ``num_workers``, ``seed``, ``pin_memory``.
    """

    uint8_image_keys = ("image",)  # decoded crops stay uint8 until the device

    def __init__(self, root: str = "data/InterHand2.6M", image_size: int = 256, interacting_only: bool = True,
                 bbox_scale: float = 1.5, train_split: str = "train", val_split: str = "val",
                 test_split: str = "test", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root, self.image_size, self.interacting_only, self.bbox_scale = root, image_size, interacting_only, \
            bbox_scale
        self.splits = {"train": train_split, "val": val_split, "test": test_split}

    def _dataset(self, split: str) -> InterHandDataset:
        root = self.check_path(self.root, "data.init_args.root")
        return InterHandDataset(root, self.splits[split], self.image_size, self.interacting_only, self.bbox_scale)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self.train_dataset = self._dataset("train")
        if stage in (None, "fit", "validate"):
            self.val_dataset = self._dataset("val")
        if stage in (None, "test", "predict"):
            self.test_dataset = self._dataset("test")
