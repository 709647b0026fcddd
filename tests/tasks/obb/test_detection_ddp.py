"""``fit`` of the rotated detector with 2 DDP CPU processes gives the single-process losses and mAP."""

import csv

import pytest
from conftest import run_visionkit

CONFIG = """
seed_everything: 0
trainer:
  max_epochs: 2
  accelerator: cpu
  log_every_n_steps: 1
  enable_progress_bar: false
model:
  class_path: RotatedDetectionTask
  init_args:
    class_names: [rectangle, ellipse, triangle]
    fcos:
      backbone_kwargs: {widths: [8, 16, 16, 32, 32], out_indices: [2, 3, 4], norm: group}
      fpn_channels: 16
      head_convs: 1
      regress_ranges: [[0, 16], [16, 32], [32, -1]]
      score_thr: 0.0
    lr: 0.003
data:
  class_path: SyntheticOBB
  init_args: {num_train: 32, num_val: 8, num_test: 8, image_size: 64, min_size: 16, max_size: 40, max_objects: 3}
"""


def _val_rows(root):
    with open(root / "version_0" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val_map50")]
    return [(float(r["val_loss"]), float(r["val_map50"])) for r in rows]


@pytest.mark.distributed
def test_ddp_fit_matches_single_process(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(CONFIG)
    runs = {
        "single": ["--data.init_args.batch_size", "8", "--trainer.devices", "1"],
        # two processes of 4 see the same 8 images per step as one process of 8; losses are normalised by
        # counts summed over processes and the backbone uses per-sample GroupNorm
        "ddp": ["--data.init_args.batch_size", "4", "--trainer.devices", "2", "--trainer.strategy", "ddp"],
    }
    values = {}
    for name, extra in runs.items():
        root = tmp_path / name
        run_visionkit(["fit", "--config", str(cfg), *extra, "--trainer.default_root_dir", str(root)], cwd=tmp_path)
        values[name] = _val_rows(root)
    single, ddp = values["single"], values["ddp"]
    assert len(single) == len(ddp) == 2
    assert single[1][0] < single[0][0]  # it trained
    for (ls, ms), (ld, md) in zip(single, ddp):
        assert ld == pytest.approx(ls, rel=1e-5)  # per-process normalisers would be off by ~1e-3
        assert md == pytest.approx(ms, abs=1e-6)
