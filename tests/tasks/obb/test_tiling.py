"""Sliding-window predict on full-size images: the same tiles and detections as split -> predict -> merge."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from visionkit.datamodules.base import collate_dict
from visionkit.datamodules.obb.dota import DOTADataset, read_task1
from visionkit.datamodules.obb.tiles import LargeImageDataset, LargeImages, tile_windows
from visionkit.ops.rotated_boxes import obb2poly
from visionkit.tasks.obb.detection import RotatedDetectionTask
from visionkit.tasks.obb.fcos import RotatedFCOSConfig
from visionkit.tasks.obb.tiling import extract_tiles

TOOL = Path(__file__).resolve().parents[3] / "tools" / "dota_split.py"
spec = importlib.util.spec_from_file_location("dota_split_tool", TOOL)
tool = importlib.util.module_from_spec(spec)
sys.modules["dota_split_tool"] = tool
spec.loader.exec_module(tool)

SIZE, GAP, RATES = 256, 64, (1.0, 0.5)
CLASSES = ["rectangle", "ellipse", "triangle"]
MODEL = dict(num_classes=3, class_names=CLASSES, tile_batch=5,
             fcos=RotatedFCOSConfig(backbone_kwargs={"widths": [8, 16, 16, 32, 32], "out_indices": [2, 3, 4]},
                                    fpn_channels=16, head_convs=1, regress_ranges=[[0, 16], [16, 32], [32, -1]],
                                    score_thr=0.0, nms_pre=60, max_det=40, nms_thr=0.1))


def _write_images(folder: Path) -> dict[str, tuple[int, int]]:
    """A large image (1500 x 1300: windows of both kinds of border) and one smaller than a window."""
    folder.mkdir(parents=True)
    g = np.random.default_rng(0)
    sizes = {"big": (1300, 1500), "small": (90, 110)}
    for name, (h, w) in sizes.items():
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(xx * 7 + yy * 3) % 256, (xx * yy) % 251, g.integers(0, 256, (h, w))], -1)
        for _ in range(40):  # bright rotated-looking blobs for the detector to react to
            cy, cx, r = g.integers(0, h), g.integers(0, w), g.integers(4, 20)
            img[max(0, cy - r):cy + r, max(0, cx - 2 * r):cx + 2 * r] = 255
        Image.fromarray(img.astype(np.uint8)).save(folder / f"{name}.png")
    return sizes


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("large")
    _write_images(root / "images")
    return root


@pytest.fixture(scope="module")
def explicit(images, tmp_path_factory):
    """Detections of the by-hand route, per image."""
    return _by_image(*_explicit_route(_task(), images, tmp_path_factory.mktemp("explicit")))


def test_windows_and_tiles_are_the_split_tools_patches(images, tmp_path):
    names = tool.split_image(images / "images" / "big.png", None, tmp_path / "split", SIZE, GAP, RATES)
    sample = LargeImageDataset([images / "images" / "big.png"], SIZE, GAP, RATES)[0]
    assert sample["image"].shape == (3, 1300, 1500) and sample["image"].dtype == torch.uint8
    expected = []
    for view, rate, win in zip(sample["views"], sample["rates"], sample["windows"]):
        tiles = extract_tiles(view, win, SIZE)
        assert tiles.shape == (len(win), 3, SIZE, SIZE)
        for (x, y), tile in zip(win.tolist(), tiles):
            name = tool.patch_name("big", rate, x, y)
            expected.append(name)
            patch = np.asarray(Image.open(tmp_path / "split" / "images" / f"{name}.png"))
            assert np.array_equal(tile.permute(1, 2, 0).numpy(), patch), name  # same pixels, same padding
    assert expected == names  # the same windows, in the tool's order
    # the windows cover the view and overlap by at least the gap
    win = tile_windows(1300, 1500, SIZE, GAP)
    assert int(win[:, 0].max()) + SIZE == 1500 and int(win[:, 1].max()) + SIZE == 1300
    xs = sorted(set(win[:, 0].tolist()))
    assert all(b - a <= SIZE - GAP for a, b in zip(xs, xs[1:]))


def _task() -> RotatedDetectionTask:
    torch.manual_seed(0)
    task = RotatedDetectionTask(**MODEL).eval()
    with torch.no_grad():  # spread the scores of the untrained head: no near-ties for float rounding to flip
        task.model.head.cls_logits.weight.mul_(200.0)
        task.model.head.cls_logits.bias.fill_(-1.0)
    return task


def _explicit_route(task: RotatedDetectionTask, images: Path, tmp: Path):
    """The by-hand route: split tool -> detector on every patch -> the tool's merge (DOTA's per-class NMS)."""
    tool.split_folder(images, tmp / "patches", SIZE, GAP, RATES)
    ds = DOTADataset(tmp / "patches", classes=CLASSES)
    names, scores, polys, labels = [], [], [], []
    with torch.no_grad():
        for start in range(0, len(ds), 5):
            batch = collate_dict([ds[i] for i in range(start, min(start + 5, len(ds)))])
            out = task(batch)
            for i, image_id in enumerate(batch["image_id"]):
                n = len(out["boxes"][i])
                names += [image_id] * n
                scores.append(out["scores"][i].double())
                polys.append(obb2poly(out["boxes"][i].double()))
                labels.append(out["labels"][i])
    return tool.merge_detections(names, torch.cat(scores).numpy(), torch.cat(polys).numpy(),
                                 torch.cat(labels).numpy(), iou_thr=0.1)


def _by_image(names, scores, polys, labels):
    out = {}
    for nm in sorted(set(names)):
        m = np.array([n == nm for n in names])
        out[nm] = (scores[m], polys[m], labels[m])
    return out


def _assert_same(ours, ref, poly_atol):
    """The same detections per image: a one-to-one match on class, score (1e-4) and corners (``poly_atol``)."""
    from scipy.spatial import cKDTree

    assert ours.keys() == ref.keys()
    for nm in ref:
        (s1, p1, l1), (s2, p2, l2) = ours[nm], ref[nm]
        assert len(s1) == len(s2) and len(s2) > 0, nm

        def key(s, p, lab):
            return np.concatenate([p.reshape(-1, 4, 2).mean(1), lab[:, None] * 1e6, s[:, None] * 1e2], 1)

        dist, idx = cKDTree(key(s1, p1, l1)).query(key(s2, p2, l2))
        assert len(set(idx.tolist())) == len(idx), nm  # one to one
        np.testing.assert_array_equal(l1[idx], l2)
        np.testing.assert_allclose(s1[idx], s2, atol=1e-4)
        # corner order may start at another corner after the poly -> box -> poly round trip
        a, b = p1[idx].reshape(-1, 4, 2), p2.reshape(-1, 4, 2)
        d = np.stack([np.abs(np.roll(a, -k, 1) - b).max((1, 2)) for k in range(4)]).min(0)
        assert d.max() < poly_atol, (nm, d.max())


def _read_written(out: Path):
    rows = {"names": [], "scores": [], "polys": [], "labels": []}
    for k, cls in enumerate(CLASSES):
        nm, sc, po = read_task1(out / f"Task1_{cls}.txt")
        rows["names"] += nm
        rows["scores"].append(sc)
        rows["polys"].append(po)
        rows["labels"].append(np.full(len(nm), k))
    return _by_image(rows["names"], np.concatenate(rows["scores"]), np.concatenate(rows["polys"]),
                     np.concatenate(rows["labels"]))


def test_one_command_predict_equals_split_predict_merge(images, explicit, tmp_path):
    from lightning.pytorch import Trainer

    from visionkit.tasks.obb.callbacks import DOTASubmissionWriter

    task, ref = _task(), explicit

    out = tmp_path / "pred"
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_checkpointing=False, callbacks=[DOTASubmissionWriter(str(out), draw_images=1)])
    dm = LargeImages(root=str(images / "images"), size=SIZE, gap=GAP, rates=list(RATES))
    preds = trainer.predict(task, datamodule=dm, return_predictions=True)
    names, scores, polys, labels = [], [], [], []
    for batch_preds, image_id in zip(preds, ["big", "small"]):  # one image per batch, sorted by name
        b = batch_preds["boxes"][0]
        names += [image_id] * len(b)
        scores.append(batch_preds["scores"][0].double())
        polys.append(obb2poly(b.double()))
        labels.append(batch_preds["labels"][0])
    ours = _by_image(names, torch.cat(scores).numpy(), torch.cat(polys).numpy(), torch.cat(labels).numpy())
    _assert_same(ours, ref, poly_atol=1e-3)
    # the written DOTA Task1 files hold the same detections (2 decimals)
    _assert_same(_read_written(out), ref, poly_atol=0.006)
    assert (out / "images" / "big.png").exists()


def _patch_config(tmp_path: Path) -> tuple[Path, Path]:
    """A patch config (DOTA datamodule) and a checkpoint of the test's model, as the CLI writes them."""
    from lightning.pytorch import Trainer

    task = _task()
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, max_steps=0)
    trainer.strategy.connect(task)
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=False)
    state["hyper_parameters"]["_class_path"] = "visionkit.tasks.obb.RotatedDetectionTask"
    torch.save(state, ckpt)  # as a checkpoint written by the CLI
    cfg = tmp_path / "patch_config.yaml"
    model_args = "\n".join(f"    {k}: {json.dumps(asdict(v) if k == 'fcos' else v)}" for k, v in MODEL.items())
    cfg.write_text(f"""seed_everything: 0
trainer:
  accelerator: cpu
  devices: 1
  logger: false
  enable_progress_bar: false
model:
  class_path: RotatedDetectionTask
  init_args:
{model_args}
data:
  class_path: DOTA
  init_args: {{root: {tmp_path / 'no_patches'}, version: v1.0, image_size: null, batch_size: 2}}
""")
    return cfg, ckpt


def _override(cfg: Path, ckpt: Path, root: Path, out: Path) -> list[str]:
    return ["predict", "--config", str(cfg), "--ckpt_path", str(ckpt),
            "--data", "LargeImages", f"--data.init_args.root={root}", f"--data.init_args.size={SIZE}",
            f"--data.init_args.gap={GAP}", "--data.init_args.rates=[1.0, 0.5]",
            "--trainer.callbacks+=visionkit.tasks.obb.callbacks.DOTASubmissionWriter",
            f"--trainer.callbacks.output_dir={out}", "--trainer.callbacks.draw_images=0"]


def test_cli_override_runs_the_large_image_predict(images, explicit, tmp_path):
    """The documented override of a patch config: --data LargeImages + a DOTASubmissionWriter."""
    from visionkit.cli import main

    cfg, ckpt = _patch_config(tmp_path)
    main(_override(cfg, ckpt, images / "images", tmp_path / "pred"))
    _assert_same(_read_written(tmp_path / "pred"), explicit, poly_atol=0.006)


@pytest.mark.slow
@pytest.mark.distributed
def test_two_process_ddp_predict_writes_every_image_once(images, explicit, tmp_path):
    """2 gloo processes: each image predicted whole by one process, none repeated (3 images for 2 processes)."""
    from conftest import run_visionkit

    root = tmp_path / "three"
    root.mkdir()
    for name in ("big", "small"):
        (root / f"{name}.png").write_bytes((images / "images" / f"{name}.png").read_bytes())
    (root / "small2.png").write_bytes((images / "images" / "small.png").read_bytes())
    cfg, ckpt = _patch_config(tmp_path)
    out = tmp_path / "pred"
    run_visionkit([*_override(cfg, ckpt, root, out), "--trainer.devices=2", "--trainer.strategy=ddp",
                   "--data.init_args.batch_size=1"], cwd=tmp_path)
    written = _read_written(out)
    assert written.keys() == {"big", "small", "small2"}
    ref = {**explicit, "small2": explicit["small"]}
    _assert_same(written, ref, poly_atol=0.006)


def test_large_images_serves_predict_only_and_checks_its_options(images):
    from visionkit.errors import DataError

    dm = LargeImages(root=str(images / "images"), size=SIZE, gap=GAP)
    with pytest.raises(DataError, match="predict only"):
        dm.setup("fit")
    dm.setup("predict")
    assert len(dm.predict_dataset) == 2
    with pytest.raises(ValueError, match="gap"):
        LargeImages(root=str(images), size=64, gap=64)
    with pytest.raises(ValueError, match="rates"):
        LargeImages(root=str(images), rates=[0.0])
    with pytest.raises(ValueError, match="tile_batch"):
        RotatedDetectionTask(tile_batch=0)
