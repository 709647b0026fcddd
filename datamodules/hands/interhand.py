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


class InterHandDataset(Dataset):
    """Samples of one InterHand2.6M split.

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
        mano = _load_json(mano_path) if mano_path.is_file() else {}
        for key in ("images", "annotations"):
            if key not in data:
                raise DataError(f"{data_path}: missing top-level key {key!r}")
        images = {img["id"]: img for img in data["images"]}
        self.samples: list[dict[str, Any]] = []
        for ann in data["annotations"]:
            where = f"{data_path}: annotation id {ann.get('id')}"
            img = images.get(ann.get("image_id"))
            if img is None:
                raise DataError(f"{where}: image_id {ann.get('image_id')} not in 'images'")
            for key in ("capture", "camera", "frame_idx", "file_name"):
                if key not in img:
                    raise DataError(f"{data_path}: image id {img.get('id')}: missing {key!r}")
            cap, cam, frame = str(img["capture"]), str(img["camera"]), str(img["frame_idx"])
            fits = mano.get(cap, {}).get(frame) or {}
            has = [fits.get("right") is not None, fits.get("left") is not None]
            if interacting_only and (ann.get("hand_type") != "interacting" or not all(has)):
                continue
            try:
                c = cams[cap]
                R = np.asarray(c["camrot"][cam], dtype=np.float64).reshape(3, 3)
                t = np.asarray(c["campos"][cam], dtype=np.float64).reshape(3)
                f = np.asarray(c["focal"][cam], dtype=np.float64).reshape(2)
                pp = np.asarray(c["princpt"][cam], dtype=np.float64).reshape(2)
            except (KeyError, ValueError) as e:
                raise DataError(f"{cam_path}: capture {cap} camera {cam}: missing or malformed ({e})") from e
            try:
                world = np.asarray(joints[cap][frame]["world_coord"], dtype=np.float64)
            except KeyError as e:
                raise DataError(f"{joint_path}: capture {cap} frame {frame}: no world_coord") from e
            valid = np.asarray(ann.get("joint_valid", []), dtype=np.float64).reshape(-1)
            if world.shape != (42, 3) or valid.shape != (42,):
                raise DataError(f"{where}: expected 42 joints, got world_coord {world.shape}, "
                                f"joint_valid {valid.shape}")
            pose = np.zeros((2, 48))
            shape = np.zeros((2, 10))
            trans = np.zeros((2, 3))
            for h, side in enumerate(("right", "left")):
                if has[h]:
                    fit = fits[side]
                    pose[h], shape[h], trans[h] = fit["pose"], fit["shape"], fit["trans"]
            self.samples.append({
                "file": self.root / "images" / split / img["file_name"], "world": world, "valid": valid,
                "R": R, "campos": t, "focal": f, "princpt": pp, "hand_type": ann.get("hand_type", ""),
                "mano_pose": pose, "mano_shape": shape, "mano_trans": trans, "mano_valid": np.asarray(has, float),
            })

    def __len__(self) -> int:
        return len(self.samples)

    def crop_box(self, uv: np.ndarray, valid: np.ndarray) -> tuple[float, float, float]:
        """Square box ``(x0, y0, side)`` around the valid 2D joints, grown by ``bbox_scale``."""
        pts = uv[valid > 0] if (valid > 0).any() else uv
        lo, hi = pts.min(0), pts.max(0)
        centre = (lo + hi) / 2
        side = max(float((hi - lo).max()) * self.bbox_scale, 1.0)
        return float(centre[0] - side / 2), float(centre[1] - side / 2), side

    def __getitem__(self, i: int) -> dict[str, Any]:
        from PIL import Image

        s = self.samples[i]
        cam = (s["world"] - s["campos"]) @ s["R"].T  # (42, 3) mm, camera space
        uv = cam[:, :2] / cam[:, 2:] * s["focal"] + s["princpt"]
        x0, y0, side = self.crop_box(uv, s["valid"])
        S = self.image_size
        scale = S / side
        if not s["file"].is_file():
            raise DatasetNotFoundError(f"data.init_args.root: image {s['file']} does not exist")
        with Image.open(s["file"]) as im:
            # output pixel (x, y) samples the input at (x / scale + x0, y / scale + y0); outside is black
            crop = im.convert("RGB").transform((S, S), Image.AFFINE, (1 / scale, 0, x0, 0, 1 / scale, y0),
                                               resample=Image.BILINEAR)
        image = torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255).permute(2, 0, 1)
        K = np.array([[s["focal"][0] * scale, 0, (s["princpt"][0] - x0) * scale],
                      [0, s["focal"][1] * scale, (s["princpt"][1] - y0) * scale], [0, 0, 1]])
        hand_type = {"right": [1.0, 0.0], "left": [0.0, 1.0], "interacting": [1.0, 1.0]}.get(s["hand_type"], [0, 0])
        f32 = torch.float32
        return {
            "image": image,
            "joints3d": torch.as_tensor(cam, dtype=f32),
            "joints2d": torch.as_tensor((uv - [x0, y0]) * scale, dtype=f32),
            "K": torch.as_tensor(K, dtype=f32),
            "hand_type": torch.tensor(hand_type, dtype=f32),
            "joint_valid": torch.as_tensor(s["valid"], dtype=f32),
            "mano_pose": torch.as_tensor(s["mano_pose"], dtype=f32),
            "mano_shape": torch.as_tensor(s["mano_shape"], dtype=f32),
            "mano_trans": torch.as_tensor(s["mano_trans"], dtype=f32),
            "mano_valid": torch.as_tensor(s["mano_valid"], dtype=f32),
            "cam_R": torch.as_tensor(s["R"], dtype=f32),
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
