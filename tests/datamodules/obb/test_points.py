"""Point-supervision datamodules: bad point files, predict on the training split, pseudo-label round trip."""

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from PIL import Image

from visionkit.datamodules.obb.dota import read_dota_txt, write_dota_txt
from visionkit.datamodules.obb.points import DOTAPoints, SyntheticPointOBB, SyntheticPseudoOBB
from visionkit.errors import DataError, DatasetNotFoundError
from visionkit.ops.rotated_boxes import box_iou_rotated, obb2poly, poly2obb
from visionkit.tasks.obb.pointobb import PointOBBConfig, PointOBBTask
from visionkit.tasks.obb.pointobb_callbacks import PseudoLabelWriter

TINY = PointOBBConfig(backbone_kwargs={"widths": [8, 16, 16, 24, 24], "out_indices": [2, 3, 4]}, fpn_channels=16,
                      roi_size=3, head_dim=32)


def _dota_points_root(tmp_path, H=48, W=64):
    root = tmp_path / "dota"
    for split in ("train", "val", "test"):
        for k in range(2):
            img = root / split / "images" / f"P{k:04d}.png"
            img.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.random.default_rng(k).integers(0, 255, (H, W, 3), dtype=np.uint8)).save(img)
            lab = root / split / "labelTxt" / f"P{k:04d}.txt"
            lab.parent.mkdir(parents=True, exist_ok=True)
            lab.write_text("10 10 40 10 40 22 10 22 plane 0\n30 30 50 40 46 48 26 38 ship 0\n")
            pts = root / split / "points" / f"P{k:04d}.txt"
            pts.parent.mkdir(parents=True, exist_ok=True)
            pts.write_text("25 16 plane\n38 39 ship\n")
    return root


@pytest.mark.parametrize("content,msg", [
    ("25 16 plane\n38 49 ship\n", r"P0001\.txt:2: point \(38, 49\) outside the 64x48 image"),
    ("25 16 plane\n\n-1 5 ship\n", r"P0001\.txt:3: point \(-1, 5\) outside"),
    ("25 16 plane\n38 39 boat\n", r"P0001\.txt:2: unknown class 'boat'"),
    ("25 16\n", r"P0001\.txt:1: expected 'x y class'"),
])
def test_bad_point_files_name_file_and_line(tmp_path, content, msg):
    root = _dota_points_root(tmp_path)
    (root / "train" / "points" / "P0001.txt").write_text(content)
    dm = DOTAPoints(root=str(root), image_size=None, point_dir="points", batch_size=2)
    dm.setup("fit")
    assert dm.train_dataset[0]["points"].shape == (2, 2)
    with pytest.raises(DataError, match=msg):
        dm.train_dataset[1]
    with pytest.raises(DataError, match=msg):  # and through the loader the task trains with
        next(iter(dm.train_dataloader()))


def test_dota_points_predict_on_training_images_and_write_pseudo_labels(tmp_path):
    root = _dota_points_root(tmp_path)
    dm = DOTAPoints(root=str(root), image_size=96, point_dir="points", batch_size=2)  # resized x1.5
    dm.setup("predict")
    assert [p.parent.parent.name for p, _ in dm.predict_dataset.items] == ["train", "train"]
    task = PointOBBTask(num_classes=len(dm.class_names), class_names=dm.class_names, pointobb=TINY)
    writer = PseudoLabelWriter(output_dir=str(tmp_path / "pseudo"))
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, callbacks=[writer], enable_progress_bar=False,
                      enable_checkpointing=False)
    preds = trainer.predict(task, datamodule=dm)
    assert writer.count == 2
    for k in range(2):
        ann = read_dota_txt(tmp_path / "pseudo" / f"P{k:04d}.txt", dm.class_names)
        assert ann["labels"] == ["plane", "ship"]
        back = poly2obb(torch.from_numpy(ann["polys"]), "le90")
        pred = preds[0]["boxes"][k].double()
        pred_orig = torch.cat([pred[:, :4] / 1.5, pred[:, 4:]], 1)  # files hold original pixel coordinates
        assert torch.allclose(box_iou_rotated(back, pred_orig, aligned=True), torch.ones(2, dtype=torch.float64),
                              atol=1e-6)


def test_synthetic_point_predict_split():
    dm = SyntheticPointOBB(num_train=5, num_val=2, num_test=3, batch_size=2)
    dm.setup("predict")
    assert len(dm.predict_dataset) == 5 and dm.predict_dataset[0]["image_id"].startswith("train_")
    s = dm.predict_dataset[0]
    assert torch.equal(s["points"], s["gt_boxes"][:, :2])  # centre points by default
    with pytest.raises(ValueError, match="predict_split"):
        SyntheticPointOBB(predict_split="all")


def test_synthetic_pseudo_labels_replace_training_boxes_only(tmp_path):
    ref = SyntheticPointOBB(num_train=4, num_val=2, num_test=2)
    ref.setup("predict")
    names = ref.class_names
    g = torch.Generator().manual_seed(0)
    written = []
    for i in range(4):
        s = ref.predict_dataset[i]
        boxes = s["gt_boxes"].double().clone()
        boxes[:, 2:4] *= 1 + 0.2 * torch.rand(len(boxes), 2, generator=g, dtype=torch.float64)
        boxes[:, 4] += 0.1
        write_dota_txt(tmp_path / f"{s['image_id']}.txt", obb2poly(boxes), [names[k] for k in s["labels"]])
        written.append(boxes)
    dm = SyntheticPseudoOBB(pseudo_label_dir=str(tmp_path), num_train=4, num_val=2, num_test=2)
    dm.setup("fit")
    for i in range(4):
        s = dm.train_dataset[i]
        iou = box_iou_rotated(s["boxes"].double(), written[i], aligned=True)
        assert torch.allclose(iou, torch.ones_like(iou), atol=1e-5)
        assert not torch.allclose(s["boxes"], s["gt_boxes"])
    v = dm.val_dataset[0]
    assert torch.equal(v["boxes"], v["gt_boxes"])
    # full-supervision reference: no pseudo labels -> the true boxes
    full = SyntheticPseudoOBB(pseudo_label_dir=None, num_train=4, num_val=2, num_test=2)
    full.setup("fit")
    assert torch.equal(full.train_dataset[1]["boxes"], full.train_dataset[1]["gt_boxes"])


def test_pseudo_label_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="data.init_args.pseudo_label_dir"):
        SyntheticPseudoOBB(pseudo_label_dir=str(tmp_path / "missing"), num_train=2, num_val=1, num_test=1).setup("fit")
    (tmp_path / "train_000000.txt").write_text("1 1 5 1 5 3 1 3 rectangle 0\n")
    with pytest.raises(DatasetNotFoundError, match="train_000001.txt"):
        SyntheticPseudoOBB(pseudo_label_dir=str(tmp_path), num_train=2, num_val=1, num_test=1).setup("fit")
    (tmp_path / "train_000001.txt").write_text("1 1 5 1 5 3 1 3 rectangle 0\n1 1 5 1 5 3 1 3 hexagon 0\n")
    with pytest.raises(DataError, match=r"train_000001\.txt:2: unknown class 'hexagon'"):
        SyntheticPseudoOBB(pseudo_label_dir=str(tmp_path), num_train=2, num_val=1, num_test=1).setup("fit")
