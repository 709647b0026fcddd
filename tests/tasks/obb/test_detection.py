"""RotatedDetectionTask: the forward contract, a learning curve, the angle metric and the CLI end to end."""

import math
from pathlib import Path

import pytest
import torch

from visionkit.datamodules.base import collate_dict
from visionkit.datamodules.obb.synthetic import SyntheticOBBDataset
from visionkit.tasks.obb import MeanAngleError, RotatedDetectionTask
from visionkit.tasks.obb.fcos import RotatedFCOSConfig

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "obb"
NET = dict(backbone_kwargs={"widths": [8, 16, 16, 32, 32], "out_indices": [2, 3, 4]}, fpn_channels=16, head_convs=1,
           regress_ranges=[[0, 16], [16, 32], [32, -1]])
TINY = dict(fcos=RotatedFCOSConfig(**NET))


@pytest.fixture(scope="module")
def batch():
    ds = SyntheticOBBDataset(4, split="train", image_size=64, max_objects=3, min_size=16, max_size=40)
    return collate_dict([ds[i] for i in range(4)])


@pytest.mark.parametrize("coder,kw", [("ucr", {"dims": 2}), ("ucr", {"dims": 3}), ("psc", {}), ("csl", {}),
                                      ("plain", {})])
def test_forward_contract(batch, coder, kw):
    net = RotatedFCOSConfig(**NET, score_thr=0.0, max_det=9)
    task = RotatedDetectionTask(angle_coder=coder, coder_kwargs=kw, fcos=net).eval()
    with torch.no_grad():
        out = task(batch)
    assert set(out) == {"boxes", "scores", "labels"}
    for k in out:
        assert isinstance(out[k], list) and len(out[k]) == 4
    for b, s, l in zip(out["boxes"], out["scores"], out["labels"]):
        assert b.shape == (s.shape[0], 5) and l.shape == s.shape and 0 < s.shape[0] <= 9
        assert l.dtype == torch.long and (l >= 0).all() and (l < 3).all()
        assert (b[:, 2] >= b[:, 3]).all() and (b[:, 4] >= -math.pi / 2).all() and (b[:, 4] < math.pi / 2).all()
    losses = task.batch_losses(batch)
    assert {"loss", "cls", "box", "ctr", "angle", "constraint"} <= set(losses)
    assert torch.isfinite(losses["loss"])
    if coder != "ucr":
        assert losses["constraint"] == 0


def test_a_few_steps_drop_the_loss(batch):
    torch.manual_seed(0)
    task = RotatedDetectionTask(angle_coder="ucr", **TINY)
    opt = torch.optim.Adam(task.parameters(), lr=4e-3)
    first = None
    for _ in range(25):
        losses = task.batch_losses(batch)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        first = first if first is not None else {k: float(v.detach()) for k, v in losses.items()}
    with torch.no_grad():
        last = {k: float(v) for k, v in task.batch_losses(batch).items()}
    assert last["loss"] < 0.6 * first["loss"]
    for k in ("cls", "box", "angle"):
        assert last[k] < first[k], k


def test_mean_angle_error_metric():
    m = MeanAngleError()
    gt = torch.tensor([[20.0, 20.0, 20.0, 8.0, 1.5], [60.0, 60.0, 30.0, 10.0, 0.0], [90.0, 30.0, 20.0, 8.0, 0.3]])
    pred = torch.tensor([
        [20.0, 20.0, 20.0, 8.0, -1.5],  # 1.5 vs -1.5: pi - 3 rad apart across the le90 boundary
        [20.0, 20.0, 20.0, 8.0, 1.0],  # lower score, ignored for gt 0
        [60.0, 60.0, 30.0, 10.0, math.radians(4)],  # 4 degrees off
        [90.0, 30.0, 20.0, 8.0, 0.3],  # right box, wrong class: no match
    ])
    m.update([{"boxes": pred, "scores": torch.tensor([0.9, 0.5, 0.8, 0.9]), "labels": torch.tensor([0, 0, 1, 0])}],
             [{"boxes": gt, "labels": torch.tensor([0, 1, 1]), "difficult": torch.zeros(3, dtype=torch.bool)}])
    expected = (math.degrees(math.pi - 3.0) + 4.0) / 2
    assert abs(float(m.compute()) - expected) < 1e-4


def test_bad_config_values():
    with pytest.raises(ValueError, match=r"model\.init_args\.fcos\.nms_pre"):
        RotatedDetectionTask(nms_pre=10)  # a pre-config checkpoint or script: the option moved
    with pytest.raises(ValueError, match="angle_coder"):
        RotatedDetectionTask(angle_coder="nope", **TINY)
    with pytest.raises(ValueError, match="iou_loss"):
        RotatedDetectionTask(iou_loss="giou", **TINY)
    with pytest.raises(ValueError, match="class_names"):
        RotatedDetectionTask(num_classes=3, class_names=["a"], **TINY)


def _tiny_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(f"""
seed_everything: 0
trainer:
  max_epochs: 1
  accelerator: cpu
  devices: 1
  log_every_n_steps: 1
  default_root_dir: {tmp_path / 'run'}
  enable_progress_bar: false
  callbacks:
    - class_path: visionkit.tasks.obb.callbacks.OBBVisualizer
      init_args: {{every_n_epochs: 1, num_images: 2}}
model:
  class_path: RotatedDetectionTask
  init_args:
    class_names: [rectangle, ellipse, triangle]
    fcos:
      backbone_kwargs: {{widths: [8, 16, 16, 32, 32], out_indices: [2, 3, 4]}}
      fpn_channels: 16
      head_convs: 1
      regress_ranges: [[0, 16], [16, 32], [32, -1]]
    lr: 0.003
data:
  class_path: SyntheticOBB
  init_args: {{num_train: 16, num_val: 8, num_test: 8, image_size: 64, min_size: 16, max_size: 40, max_objects: 3,
               batch_size: 8}}
""")
    return cfg


def test_cli_fit_test_predict(tmp_path):
    from visionkit.cli import main

    cfg = _tiny_config(tmp_path)
    cli = main(["fit", "--config", str(cfg), "--trainer.max_epochs", "1"])
    assert "val_map50" in cli.trainer.callback_metrics
    # the network options of the config reach the model (head_convs 1, not the default 2) ...
    net = cli.model.model
    assert len(net.head.cls_tower) == 3 and net.regress_ranges == [(0.0, 16.0), (16.0, 32.0), (32.0, math.inf)]
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert ckpt.exists()
    # ... and come back from the checkpoint with the same weights
    loaded = RotatedDetectionTask.load_from_checkpoint(ckpt)
    assert loaded.model.config == net.config and loaded.model.config.head_convs == 1
    assert all(torch.equal(v, cli.model.state_dict()[k]) for k, v in loaded.state_dict().items())
    assert list((tmp_path / "run").rglob("obb_vis/epoch_000.png"))
    cli = main(["test", "--config", str(cfg), "--ckpt_path", str(ckpt)])
    metrics = cli.trainer.callback_metrics
    assert 0.0 <= float(metrics["test_map50"]) <= 1.0
    out = tmp_path / "pred"
    main(["predict", "--config", str(cfg), "--ckpt_path", str(ckpt),
          "--trainer.callbacks+=visionkit.tasks.obb.callbacks.DOTASubmissionWriter",
          f"--trainer.callbacks.output_dir={out}", "--trainer.callbacks.draw_images=2",
          "--trainer.callbacks.draw_score_thr=0.0"])
    files = sorted(p.name for p in out.glob("Task1_*.txt"))
    assert files == ["Task1_ellipse.txt", "Task1_rectangle.txt", "Task1_triangle.txt"]
    for p in out.glob("Task1_*.txt"):
        for line in p.read_text().splitlines():
            f = line.split()
            assert len(f) == 10 and f[0].startswith("test_") and 0 <= float(f[1]) <= 1
    assert len(list((out / "images").glob("*.png"))) == 2
    assert not (out / ".parts").exists()


@pytest.mark.slow
def test_synthetic_config_reaches_targets(tmp_path):
    """The README's main job: ``configs/obb/synthetic.yaml`` to test mAP50 >= 0.80, angle error <= 5 degrees."""
    from visionkit.cli import main

    cfg = str(CONFIGS / "synthetic.yaml")
    root = tmp_path / "run"
    main(["fit", "--config", cfg, f"--trainer.default_root_dir={root}", "--trainer.enable_progress_bar=false"])
    cli = main(["test", "--config", cfg, f"--trainer.default_root_dir={root}",
                "--ckpt_path", str(root / "checkpoints" / "last.ckpt")])
    m = cli.trainer.callback_metrics
    assert float(m["test_map50"]) >= 0.80
    assert float(m["test_angle_error"]) <= 5.0
