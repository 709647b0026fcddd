"""InterHand2.6M loader on a tiny fixture written in the official JSON formats."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from visionkit.datamodules.hands.interhand import InterHand26M, InterHandDataset
from visionkit.errors import DataError

W, H = 334, 512  # InterHand2.6M image size


@pytest.fixture
def interhand_root(tmp_path):
    rng = np.random.default_rng(0)
    split, cap, cam = "val", "0", "400262"
    co, si = np.cos(0.3), np.sin(0.3)  # camera looking along the world z axis with a small roll
    R = np.array([[co, -si, 0], [si, co, 0], [0, 0, 1.0]])
    campos = np.array([100.0, -50.0, -800.0])
    focal, princpt = [1200.0, 1210.0], [170.0, 250.0]
    frames, images, annotations, joint3d, mano = ["20631", "20632"], [], [], {cap: {}}, {cap: {}}
    world = {}
    for k, frame in enumerate(frames):
        # two hands around the optical axis, 400-600 mm in front of the camera
        cam_pts = np.concatenate([rng.normal([30, 0, 600], 25, size=(21, 3)), rng.normal([-30, 10, 600], 25, (21, 3))])
        w = cam_pts @ R + campos  # inverse of x_cam = R (x_world - campos)
        world[frame] = w
        joint3d[cap][frame] = {"world_coord": w.tolist(), "joint_valid": [[1]] * 42, "hand_type": "interacting",
                               "hand_type_valid": True}
        fname = f"Capture{cap}/ROM01_No_Interaction_2_Hand/cam{cam}/image{frame}.jpg"
        images.append({"id": k, "file_name": fname, "width": W, "height": H, "capture": int(cap),
                       "subject": 0, "seq_name": "ROM01_No_Interaction_2_Hand", "camera": cam,
                       "frame_idx": int(frame)})
        valid = [[1]] * 42
        valid[5] = [0]
        annotations.append({"id": k, "image_id": k, "bbox": [50.0, 60.0, 200.0, 250.0], "joint_valid": valid,
                            "hand_type": "interacting", "hand_type_valid": 1})
        fit = {"pose": rng.normal(size=48).tolist(), "shape": rng.normal(size=10).tolist(),
               "trans": rng.normal(size=3).tolist()}
        mano[cap][frame] = {"right": fit, "left": fit if k == 0 else None}  # second frame: left fit missing
        # image: dark, with a bright 3x3 dot at the right wrist
        uvw = cam_pts @ np.diag([focal[0], focal[1], 1.0]).T
        uv = uvw[:, :2] / uvw[:, 2:] + princpt
        arr = np.full((H, W, 3), 20, np.uint8)
        x, y = np.floor(uv[20]).astype(int)
        arr[y - 1 : y + 2, x - 1 : x + 2] = 255
        path = tmp_path / "images" / split / fname
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path, quality=100)
    ann_dir = tmp_path / "annotations" / split
    ann_dir.mkdir(parents=True)
    camera = {cap: {"campos": {cam: campos.tolist()}, "camrot": {cam: R.tolist()}, "focal": {cam: focal},
                    "princpt": {cam: princpt}}}
    for kind, obj in (("data", {"images": images, "annotations": annotations}), ("camera", camera),
                      ("joint_3d", joint3d), ("MANO_NeuralAnnot", mano)):
        (ann_dir / f"InterHand2.6M_{split}_{kind}.json").write_text(json.dumps(obj))
    return tmp_path, world, R, campos, focal, princpt


def test_parses_official_format_and_reprojects_to_the_crop(interhand_root):
    root, world, R, campos, focal, princpt = interhand_root
    ds = InterHandDataset(root, "val", image_size=128)
    assert len(ds) == 1  # the frame with a null left fit is not an interacting frame with both fits
    s = ds[0]
    assert s["image"].shape == (3, 128, 128) and s["joints3d"].shape == (42, 3)
    cam = (world["20631"] - campos) @ R.T
    np.testing.assert_allclose(s["joints3d"].numpy(), cam, atol=1e-3)
    assert s["joint_valid"][5] == 0 and s["joint_valid"].sum() == 41
    # the crop's intrinsics reproject the camera-space joints onto the crop's 2D joints
    uvw = s["joints3d"].double() @ s["K"].double().T
    np.testing.assert_allclose((uvw[:, :2] / uvw[:, 2:]).numpy(), s["joints2d"].numpy(), atol=1e-3)
    # independent check: original pixels mapped by the square crop box
    uv = cam[:, :2] / cam[:, 2:] * focal + princpt
    x0, y0, side = ds.crop_box(uv, s["joint_valid"].numpy())
    np.testing.assert_allclose(s["joints2d"].numpy(), (uv - [x0, y0]) * 128 / side, atol=1e-3)
    valid = s["joint_valid"].numpy() > 0
    assert s["joints2d"].numpy()[valid].min() >= 0 and s["joints2d"].numpy()[valid].max() <= 128
    # the bright dot drawn at the right wrist lands on the reprojected wrist in the crop
    assert s["image"].dtype == torch.uint8  # float on the device (BaseDataModule.uint8_image_keys)
    img = s["image"].float().mean(0)
    y, x = divmod(int(img.argmax()), 128)
    assert abs(x + 0.5 - s["joints2d"][20, 0]) < 2.5 and abs(y + 0.5 - s["joints2d"][20, 1]) < 2.5
    assert torch.equal(s["mano_valid"], torch.tensor([1.0, 1.0])) and s["mano_pose"].shape == (2, 48)


def test_single_fit_frames_when_not_interacting_only(interhand_root):
    root = interhand_root[0]
    ds = InterHandDataset(root, "val", image_size=64, interacting_only=False)
    assert len(ds) == 2
    assert torch.equal(ds[1]["mano_valid"], torch.tensor([1.0, 0.0]))
    assert ds[1]["mano_pose"][1].abs().sum() == 0


def test_datamodule_and_clear_errors(interhand_root, tmp_path):
    root = interhand_root[0]
    dm = InterHand26M(root=str(root), image_size=64, batch_size=1, val_split="val", test_split="val")
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    assert batch["K"].shape == (1, 3, 3)
    on_device = dm.on_after_batch_transfer(dict(batch), 0)
    assert on_device["image"].dtype == torch.float32
    assert torch.equal(on_device["image"], batch["image"].float() / 255)
    with pytest.raises(FileNotFoundError, match="data.init_args.root"):
        InterHand26M(root=str(tmp_path / "nope")).setup("validate")
    bad = root / "annotations" / "val" / "InterHand2.6M_val_joint_3d.json"
    bad.write_text('{"0": {"20631": {"world_coord": [[1, 2, 3]]\n,}}}')
    with pytest.raises(DataError, match=r"InterHand2.6M_val_joint_3d.json:2"):
        InterHandDataset(root, "val")


def _edit(root, kind, fn):
    path = root / "annotations" / "val" / f"InterHand2.6M_val_{kind}.json"
    obj = json.loads(path.read_text())
    fn(obj)
    path.write_text(json.dumps(obj))


def _drop(key):
    return lambda obj: obj["annotations"][0].pop(key)


def _set_world(obj):
    obj["0"]["20631"]["world_coord"][3][1] = float("nan")


_BROKEN = [
    # (file, edit, error class, message)
    ("data", _drop("id"), DataError, r"InterHand2.6M_val_data.json: annotations\[0\] \(id None\): missing 'id'"),
    ("data", _drop("hand_type"), DataError, r"annotations\[0\] \(id 0\): missing 'hand_type'"),
    ("data", lambda o: o["images"][0].pop("capture"), DataError, r"images\[0\] \(id 0\): missing 'capture'"),
    ("MANO_NeuralAnnot", lambda o: o["0"]["20631"]["right"].pop("pose"), DataError,
     r"InterHand2.6M_val_MANO_NeuralAnnot.json: capture 0 frame 20631 right: missing 'pose'"),
    ("MANO_NeuralAnnot", lambda o: o["0"]["20631"]["left"]["shape"].pop(), DataError,
     r"capture 0 frame 20631 left: 'shape' has 9 values \(finite: True\), expected 10 finite"),
    ("joint_3d", _set_world, DataError,
     r"InterHand2.6M_val_joint_3d.json: capture 0 frame 20631: non-finite world_coord at joints \[3\]"),
    ("data", lambda o: [a.update(hand_type="right") for a in o["annotations"]], DataError,
     r"no samples left in split 'val': 2 annotations, 0 interacting, none with both MANO fits"),
]


@pytest.mark.parametrize(("kind", "edit", "error", "message"), _BROKEN,
                         ids=["no-id", "no-hand_type", "no-capture", "no-pose", "short-shape", "nan-world",
                              "none-left"])
def test_malformed_records_raise_one_line(interhand_root, kind, edit, error, message):
    root = interhand_root[0]
    _edit(root, kind, edit)
    with pytest.raises(error, match=message) as e:
        InterHandDataset(root, "val")
    assert "\n" not in str(e.value)


def test_missing_mano_json_is_an_error_only_when_fits_are_needed(interhand_root):
    root = interhand_root[0]
    (root / "annotations" / "val" / "InterHand2.6M_val_MANO_NeuralAnnot.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"MANO_NeuralAnnot.json does not exist; interacting_only"):
        InterHandDataset(root, "val")
    ds = InterHandDataset(root, "val", image_size=32, interacting_only=False)
    assert len(ds) == 2 and not ds.mano_valid.any()


def _write_frames(root, n):
    """``n`` interacting frames (4 cameras) in the official JSON files, no images."""
    rng = np.random.default_rng(0)
    images, anns, joints, mano = [], [], {"0": {}}, {"0": {}}
    for k in range(n):
        frame, cam = str(1000 + k // 4), str(400000 + k % 4)
        images.append({"id": k, "file_name": f"Capture0/seq/cam{cam}/image{frame}.jpg", "capture": 0, "camera": cam,
                       "frame_idx": int(frame)})
        anns.append({"id": k, "image_id": k, "joint_valid": [[1]] * 42, "hand_type": "interacting"})
        joints["0"][frame] = {"world_coord": rng.normal(500, 50, (42, 3)).tolist()}
        fit = {"pose": rng.normal(size=48).tolist(), "shape": rng.normal(size=10).tolist(), "trans": [0, 0, 0]}
        mano["0"][frame] = {"right": fit, "left": fit}
    cams = {"0": {key: {str(400000 + c): val for c in range(4)} for key, val in
                  (("campos", [0, 0, -1000.0]), ("camrot", np.eye(3).tolist()), ("focal", [1200.0, 1200.0]),
                   ("princpt", [167.0, 256.0]))}}
    folder = root / "annotations" / "train"
    folder.mkdir(parents=True)
    for kind, obj in (("data", {"images": images, "annotations": anns}), ("camera", cams), ("joint_3d", joints),
                      ("MANO_NeuralAnnot", mano)):
        (folder / f"InterHand2.6M_train_{kind}.json").write_text(json.dumps(obj))


def test_annotations_are_compact_arrays(tmp_path):
    """One array per field (no per-sample Python objects): the kept annotation bytes grow by a fixed amount per
    sample, measured with tracemalloc on 8 and 40 frames written in the official format."""
    import gc
    import tracemalloc

    kept = {}
    for n in (8, 40):
        _write_frames(tmp_path / str(n), n)
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        ds = InterHandDataset(tmp_path / str(n), "train")
        gc.collect()
        kept[n] = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        assert len(ds) == n
        assert all(isinstance(getattr(ds, k), np.ndarray) for k in ("world", "joint_valid", "mano_pose", "file"))
        assert ds.annotation_bytes() <= kept[n]
    per_sample = (kept[40] - kept[8]) / 32
    # world 504 + valid 42 + camera 4 + type 1 + MANO 488 + validity 2 + file name ~40 bytes
    assert per_sample < 1200, per_sample
