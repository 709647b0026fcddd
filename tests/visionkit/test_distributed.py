"""DDP with 2 CPU processes (gloo) gives the single-process validation metric."""

import csv

import pytest
from conftest import run_visionkit


def _val_metric(root):
    with open(root / "version_0" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val_MeanSquaredError")]
    return [float(r["val_MeanSquaredError"]) for r in rows]


@pytest.mark.distributed
def test_ddp_two_cpu_processes_match_single_process(tmp_path):
    common = ["fit", "--model", "toy.ToyRegressionTask", "--model.dropout", "0", "--model.lr", "0.01",
              "--data", "toy.ToyRegressionData", "--trainer.max_epochs", "2", "--trainer.accelerator", "cpu",
              "--trainer.enable_progress_bar", "false"]
    runs = {
        "single": ["--data.batch_size", "32", "--trainer.devices", "1"],
        # two processes of 16 see the same 32 samples per step as one process of 32
        "ddp": ["--data.batch_size", "16", "--trainer.devices", "2", "--trainer.strategy", "ddp"],
    }
    values = {}
    for name, extra in runs.items():
        root = tmp_path / name
        run_visionkit([*common, *extra, "--trainer.default_root_dir", str(root)], cwd=tmp_path)
        values[name] = _val_metric(root)
    assert len(values["single"]) == 2
    assert values["ddp"] == pytest.approx(values["single"], rel=1e-4)
    assert values["single"][1] < values["single"][0]  # it trained
