"""Hands metrics under DDP: 2 CPU processes (gloo) report the single-process validation metrics."""

import csv
import subprocess
import sys

import pytest
from conftest import subprocess_env

CONFIG = """
seed_everything: 0
trainer: {accelerator: cpu, enable_progress_bar: false, max_epochs: 1, limit_train_batches: 0}
model:
  class_path: HandReconstructionTask
  init_args: {backbone_kwargs: {widths: [8, 8, 16, 16, 16], out_indices: [2, 3, 4]}, dim: 16, hidden: 32,
              bone_channels: 1}
data:
  class_path: SyntheticHands
  init_args: {num_train: 8, num_val: 8, num_test: 8, image_size: 64, focal: 100.0}
"""


def _metrics(root):
    with open(root / "version_0" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val_MPJPE")]
    return {k: float(rows[-1][k]) for k in ("val_MPJPE", "val_PAMPJPE", "val_MRRPE", "val_MPJPE_it0")}


@pytest.mark.slow
@pytest.mark.distributed
def test_ddp_validation_matches_single_process(tmp_path):
    cfg = tmp_path / "hands.yaml"
    cfg.write_text(CONFIG)
    runs = {"single": ["--data.batch_size", "4", "--trainer.devices", "1"],
            "ddp": ["--data.batch_size", "2", "--trainer.devices", "2", "--trainer.strategy", "ddp"]}
    values = {}
    for name, extra in runs.items():
        root = tmp_path / name
        r = subprocess.run([sys.executable, "-m", "visionkit", "validate", "--config", str(cfg), *extra,
                            "--trainer.default_root_dir", str(root)], env=subprocess_env(), capture_output=True,
                           text=True, timeout=900, cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        values[name] = _metrics(root)
    assert values["ddp"] == pytest.approx(values["single"], rel=1e-4)
