"""Every family's synthetic config, with its picture callbacks, runs fit + validate + test + predict under DDP.

Two CPU processes (gloo, ``--trainer.strategy ddp --trainer.devices 2``) run the four stages one after the
other in the same processes (``ddp_driver.py``), on tiny sizes. A callback that calls a collective on one rank
only (``trainer.log_dir`` after a rank-0 check) makes the run hang: the per-test timeout turns that into a
failure and the whole process group is killed. Where the family's DDP results equal one process's
(per-sample normalisation, globally normalised losses, an epoch-seeded sampler), the validation and test
metrics are compared with a one-process run of twice the batch.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import subprocess_env

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().parent / "ddp_driver.py"

COMMON = {"max_epochs": 1, "check_val_every_n_epoch": 1, "num_sanity_val_steps": 0, "enable_progress_bar": False,
          "log_every_n_steps": 1}


@dataclass
class Family:
    """One family's DDP case: config, tiny overrides, the picture folder its callback writes, comparisons."""

    config: str
    model: dict
    data: dict
    pictures: str
    batch_size: int = 2
    trainer: dict = field(default_factory=dict)
    compare: tuple[str, ...] = ()  # metric names equal to one process's (rel. 1e-4)
    written: int = 0  # files the config's prediction writer makes (one per predicted image, both ranks)


FAMILIES = {
    "obb": Family(
        "obb/synthetic.yaml",
        model={"fcos": {"backbone_kwargs": {"widths": [8, 8, 16, 16, 16], "out_indices": [2, 3, 4], "norm": "group"},
                        "fpn_channels": 16, "head_convs": 1}, "warmup_steps": 0},
        # no random augmentation: its draws depend on the rank, so two processes would not see one's batches
        data={"num_train": 8, "num_val": 4, "num_test": 4, "image_size": 64, "augment_flips": False,
              "augment_rotate": 0.0, "augment_jitter": 0.0},
        pictures="obb_vis", compare=("val_loss", "val_map50", "test_loss", "test_map50")),
    "pointobb": Family(
        "obb/pointobb_synthetic.yaml",
        model={"pointobb": {"backbone_kwargs": {"widths": [8, 8, 16, 16], "out_indices": [1, 2, 3]}, "fpn_channels": 16,
                            "head_dim": 16, "tensor_maps": 4, "num_negatives": 8, "bag_scales": [10.0, 20.0, 30.0],
                            "bag_ratios": [0.5, 1.0, 2.0], "topk": 3}},
        data={"num_train": 4, "num_val": 4, "num_test": 4, "image_size": 64},
        pictures="pointobb_vis", written=4),
    "pointcloud": Family(
        "pointcloud/synthetic_fa_pointnet_seg.yaml",
        model={"model_args": {"widths": [8, 16, 16], "seg_head": [16], "dropout": 0.0}, "test_repeats": 1},
        data={"num_points": 64, "num_train": 4, "num_val": 4, "num_test": 4, "cache_dir": "pc_cache"},
        pictures="pictures"),
    "motion": Family(
        "motion/particles.yaml",
        model={"channels": 8, "hidden": 8, "num_layers": 1, "past_len": 4, "future_len": 4},
        data={"num_train": 4, "num_val": 4, "num_test": 4, "num_steps": 2000, "sample_every": 200, "past_len": 4,
              "future_len": 4, "cache_dir": "particles_cache"},
        pictures="trajectories"),
    "generation": Family(
        "generation/digits_raster.yaml",
        model={"dim": 16, "depth": 1, "heads": 2, "judge_path": None, "samples_per_image": 1},
        data={"val_size": 10, "test_size": 10},
        trainer={"limit_train_batches": 2, "limit_predict_batches": 1},
        batch_size=5, pictures="samples"),
    "hands": Family(
        "hands/synthetic.yaml",
        model={"backbone_kwargs": {"widths": [8, 8, 16, 16, 16], "out_indices": [1, 2, 3, 4], "norm": "group"},
               "dim": 16, "hidden": 32, "bone_channels": 1, "warmup_steps": 0},
        data={"num_train": 4, "num_val": 4, "num_test": 4, "image_size": 64, "focal": 100.0},
        pictures="hand_skeletons", compare=("val_MPJPE", "val_PAMPJPE", "test_MPJPE", "test_PAMPJPE")),
}


def _override(fam: Family, root: Path, devices: int, batch_size: int) -> dict:
    """The tiny override of the family config: same callbacks (drawing every epoch), small model and data."""
    base = yaml.safe_load((REPO / "configs" / fam.config).read_text())
    callbacks = []
    for cb in base["trainer"].get("callbacks") or []:
        args = dict(cb.get("init_args") or {})
        if "every_n_epochs" in args:
            args["every_n_epochs"] = 1
        if "output_dir" in args:  # a writer: its files go below the run folder
            args["output_dir"] = str(root / "written" / cb["class_path"].rsplit(".", 1)[-1])
        callbacks.append({"class_path": cb["class_path"], "init_args": args})
    assert callbacks, f"{fam.config} names no callback"
    trainer = {**COMMON, **fam.trainer, "callbacks": callbacks, "default_root_dir": str(root), "accelerator": "cpu",
               "devices": devices, "strategy": "ddp" if devices > 1 else "auto"}
    return {"trainer": trainer, "model": {"init_args": fam.model},
            "data": {"init_args": {**fam.data, "batch_size": batch_size, "num_workers": 0}}}


def run_driver(fam: Family, tmp_path: Path, name: str, devices: int, batch_size: int, timeout: float) -> dict:
    """Run ``ddp_driver.py`` in its own session; on a hang or a failure kill every process of the session."""
    root = tmp_path / name
    override = tmp_path / f"{name}.yaml"
    override.write_text(yaml.safe_dump(_override(fam, root, devices, batch_size)))
    out = tmp_path / f"{name}.json"
    cmd = [sys.executable, str(DRIVER), str(out), "--config", str(REPO / "configs" / fam.config),
           "--config", str(override)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{fam.config} with {devices} processes did not finish in {timeout:.0f} s (a collective "
                    f"reached by one rank only?)")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the DDP worker processes share the session
        except ProcessLookupError:
            pass
    errors = [ln for ln in log.splitlines() if "Error" in ln and not ln.lstrip("[rank0123]: ").startswith("^")]
    assert proc.returncode == 0, "\n".join(errors[:10]) + "\n...\n" + log[-2000:]  # any rank's error first
    result = json.loads(out.read_text())
    result["root"] = root
    return result


@pytest.mark.distributed
@pytest.mark.timeout(240)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_ddp_fit_validate_test_predict_with_default_callbacks(family, tmp_path):
    fam = FAMILIES[family]
    ddp = run_driver(fam, tmp_path, "ddp", devices=2, batch_size=fam.batch_size, timeout=150)
    assert ddp["world_size"] == 2
    assert ddp["predict_batches"] >= 1
    # rank 0 drew the pictures of the fit's validation epoch and of the separate validate run
    pics = sorted((Path(ddp["log_dir"]) / fam.pictures).glob("*.png"))
    assert pics, f"no picture in {ddp['log_dir']}/{fam.pictures}"
    assert all(p.stat().st_size > 100 for p in pics)
    written = sorted((tmp_path / "ddp" / "written").glob("*/*"))  # the config's writers (PointOBB's pseudo labels)
    assert len(written) == fam.written, written
    metrics = {**ddp["val"], **ddp["test"]}
    for split in ("val", "test"):
        assert any(k.startswith(f"{split}_") and math.isfinite(v) for k, v in metrics.items()), sorted(metrics)
    if fam.compare:
        # one process with the batch of both: the same samples per step, the same metrics
        single = run_driver(fam, tmp_path, "single", devices=1, batch_size=2 * fam.batch_size, timeout=60)
        ref = {**single["val"], **single["test"]}
        for key in fam.compare:
            assert metrics[key] == pytest.approx(ref[key], rel=1e-4, abs=1e-6), key
