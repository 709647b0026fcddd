"""tools/bench_hands.py: the accuracy benchmark evaluates on the images the checkpoint was trained on."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from visionkit.callbacks.checkpoint import CONFIG_KEY
from visionkit.errors import CheckpointError

TOOL = Path(__file__).resolve().parents[2] / "tools" / "bench_hands.py"
spec = importlib.util.spec_from_file_location("bench_hands", TOOL)
bench = importlib.util.module_from_spec(spec)
sys.modules.setdefault("bench_hands", bench)
spec.loader.exec_module(bench)


def _ckpt(tmp_path, config):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}, **({CONFIG_KEY: config} if config is not None else {})}, path)
    return str(path)


def test_focal_read_from_the_stored_run_configuration(tmp_path):
    data = {"class_path": "visionkit.datamodules.hands.SyntheticHands", "init_args": {"focal": 280.0, "seed": 0}}
    assert bench.checkpoint_focal(_ckpt(tmp_path, {"data": data})) == 280.0


def test_focal_unknown_without_synthetic_hands_configuration(tmp_path):
    other = {"data": {"class_path": "visionkit.datamodules.hands.InterHand26M", "init_args": {"root": "x"}}}
    assert bench.checkpoint_focal(_ckpt(tmp_path, other)) is None
    assert bench.checkpoint_focal(_ckpt(tmp_path, None)) is None
    no_focal = {"data": {"class_path": "SyntheticHands", "init_args": {"seed": 1}}}
    assert bench.checkpoint_focal(_ckpt(tmp_path, no_focal)) is None


class _Planted:
    def __reduce__(self):
        return (print, ("ran code from the checkpoint",))


def test_checkpoint_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "planted.ckpt"
    torch.save({"state_dict": {}, CONFIG_KEY: {"data": _Planted()}}, path)
    with pytest.raises(CheckpointError, match="planted.ckpt"):
        bench.checkpoint_focal(str(path))
