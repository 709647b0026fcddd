"""Run folders, safe checkpoint loading, refusals and one-line errors of the command line (all in-process)."""

import os
from pathlib import Path

import pytest
import torch

from visionkit.cli import _one_line, default_run_dir, main
from visionkit.errors import CheckpointError, DataError
from visionkit.io import load_torch

CONFIG = """model:
  class_path: toy.ToyRegressionTask
  init_args: {{hidden: {hidden}}}
data:
  class_path: toy.ToyRegressionData
  init_args: {{num_train: 64, num_val: 32, batch_size: 16}}
trainer: {{max_epochs: {epochs}, enable_progress_bar: false, enable_model_summary: false, log_every_n_steps: 1}}
"""


def write_config(folder: Path, name: str, hidden: int = 16, epochs: int = 1) -> str:
    path = folder / f"{name}.yaml"
    path.write_text(CONFIG.format(hidden=hidden, epochs=epochs))
    return str(path)


def run(args, capsys) -> tuple[int, list[str]]:
    """Run the CLI in this process; return its exit status and the ``error:`` lines it printed."""
    capsys.readouterr()
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]


def one_error(args, capsys) -> str:
    code, errors = run(args, capsys)
    assert code == 2 and len(errors) == 1, (code, errors)
    return errors[0]


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_run_folder_per_config_and_last_is_the_latest(cwd, capsys):
    a, b = write_config(cwd, "a"), write_config(cwd, "b", hidden=8)
    assert default_run_dir([a], "ToyRegressionTask") == os.path.join("runs", cwd.name, "a")
    assert default_run_dir(None, "ToyRegressionTask") == os.path.join("runs", "ToyRegressionTask")
    assert run(["fit", "--config", a], capsys)[0] == 0
    assert run(["fit", "--config", b], capsys)[0] == 0
    ra, rb = cwd / "runs" / cwd.name / "a" / "checkpoints", cwd / "runs" / cwd.name / "b" / "checkpoints"
    assert torch.load(rb / "last.ckpt", weights_only=True)["hyper_parameters"]["hidden"] == 8
    # a second, longer run of the same config replaces last.ckpt (no last-v1.ckpt beside it)
    assert run(["fit", "--config", a, "--trainer.max_epochs", "2"], capsys)[0] == 0
    assert sorted(p.name for p in ra.glob("last*")) == ["last.ckpt"]
    assert torch.load(ra / "last.ckpt", weights_only=True)["global_step"] == 2 * 4
    # resuming another experiment's folder is refused, naming the differing keys
    err = one_error(["fit", "--config", b, "--trainer.default_root_dir", str(ra.parent), "--ckpt_path", "last"],
                    capsys)
    assert "another experiment" in err and "model.init_args.hidden: 16 -> 8" in err
    err = one_error(["fit", "--config", a, "--data.init_args.num_train", "32", "--ckpt_path", "last"], capsys)
    assert "data.init_args.num_train: 64 -> 32" in err
    # trainer keys and worker counts may differ; the same experiment resumes
    assert run(["fit", "--config", a, "--ckpt_path", "last", "--trainer.max_epochs", "3",
                "--data.init_args.num_workers", "0"], capsys)[0] == 0
    assert torch.load(ra / "last.ckpt", weights_only=True)["global_step"] == 3 * 4
    # test with the checkpoint works; without weights it is refused unless asked for
    assert run(["test", "--config", a, "--ckpt_path", "last"], capsys)[0] == 0
    assert "--allow_untrained" in one_error(["test", "--config", a], capsys)
    assert "--allow_untrained" in one_error(["predict", "--config", a], capsys)
    assert run(["test", "--config", a, "--allow_untrained", "true"], capsys)[0] == 0


def test_last_in_an_empty_folder_is_an_error(cwd, capsys):
    a = write_config(cwd, "a")
    err = one_error(["test", "--config", a, "--ckpt_path", "last"], capsys)
    assert "no last.ckpt" in err and str(cwd / "runs" / cwd.name / "a" / "checkpoints") in err


class _Payload:
    """Unpickling this runs ``touch <marker>``: what a planted checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("where", ["file", "last"])
def test_planted_pickle_payload_does_not_run(cwd, capsys, where):
    a = write_config(cwd, "a")
    marker = cwd / "payload_ran"
    ckpt = cwd / "runs" / cwd.name / "a" / "checkpoints" / "last.ckpt" if where == "last" else cwd / "evil.ckpt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "hyper_parameters": {"hidden": 16}, "x": _Payload(marker)}, ckpt)
    err = one_error(["test", "--config", a, "--ckpt_path", str(ckpt) if where == "file" else "last"], capsys)
    assert str(ckpt) in err and "--trust_checkpoint" in err
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="posix.system|os.system|nt.system"):
        load_torch(ckpt)
    assert not marker.exists()


def test_trusted_load_reads_objects(tmp_path):
    path = tmp_path / "obj.pt"
    torch.save({"p": Path("a/b"), "f": _Payload}, path)  # a class object needs full unpickling
    with pytest.raises(CheckpointError):
        load_torch(path)
    assert load_torch(path, trust=True)["f"] is _Payload
    torch.save({"p": Path("a/b"), "t": torch.ones(2)}, path)  # paths are allow-listed
    assert load_torch(path)["p"] == Path("a/b")


def test_checkpoint_of_another_task_is_refused(cwd, capsys):
    a = write_config(cwd, "a")
    ckpt = cwd / "other.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "visionkit.tasks.obb.RotatedDetectionTask",
                                                       "num_classes": 3}}, ckpt)
    err = one_error(["test", "--config", a, "--ckpt_path", str(ckpt)], capsys)
    assert "RotatedDetectionTask" in err and "ToyRegressionTask" in err and str(ckpt) in err


def test_non_finite_loss_stops_without_checkpoint(cwd, capsys):
    a = write_config(cwd, "a", epochs=3)
    err = one_error(["fit", "--config", a, "--model.init_args.optimizer", "sgd", "--model.init_args.lr", "1e12"],
                    capsys)
    assert "non-finite loss" in err and "step " in err and "loss=" in err
    ckpts = list((cwd / "runs").rglob("*.ckpt"))
    for c in ckpts:  # anything written before the blow-up holds finite weights only
        assert all(torch.isfinite(v).all() for v in torch.load(c, weights_only=True)["state_dict"].values())


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--data.init_args.batch_size", "0"], "data.init_args.batch_size: expected a positive integer, got 0"),
        (["--data.init_args.batch_size", "-4"], "data.init_args.batch_size: expected a positive integer, got -4"),
        (["--data.init_args.num_workers", "-1"], "data.init_args.num_workers"),
        (["--model.init_args.optimizer", "lion"],
         "model.init_args.optimizer: expected one of 'adamw', 'adam', 'sgd', got 'lion'"),
        (["--model.init_args.dropout", "2"], "model (ToyRegressionTask): ValueError: dropout probability"),
        (["--data", "MD17", "--data.init_args.molecule", "asprin"],
         "data (MD17): ValueError: data.init_args.molecule: expected one of"),
        (["--model.init_args.hidden", "sixty"], "model.init_args.hidden: expected int, got 'sixty'"),
        (["--trainer.max_epochs", "x"], "trainer.max_epochs: expected int or None, got 'x'"),
        (["--model", "toy.NoTask"], "unknown class 'toy.NoTask'"),
        (["--model", "MotionPredictionTask", "--data", "SyntheticOBB"], "motion task but data SyntheticOBB is a obb"),
        (["--trainer.default_root_dir", "{cwd}/a.yaml/run"], "checkpoint folder"),
        (["--data.init_args.num_train", "0"], "data (ToyRegressionData): the train split is empty"),
    ],
)
def test_bad_values_give_one_line(cwd, capsys, extra, expected):
    a = write_config(cwd, "a")
    err = one_error(["fit", "--config", a, *[e.format(cwd=cwd) for e in extra]], capsys)
    assert expected in err, err


def test_yaml_syntax_error_names_file_line_and_column(cwd, capsys):
    cfg = cwd / "broken.yaml"
    cfg.write_text("model:\n  class_path: toy.ToyRegressionTask\n  init_args: {hidden: 16\ndata:\n"
                   "  class_path: toy.ToyRegressionData\n")
    err = one_error(["fit", "--config", str(cfg)], capsys)
    assert "broken.yaml: line 4, column 5: YAML syntax" in err and "line 3, column 14" in err


def test_prediction_folder_is_checked_before_the_model_runs(cwd, capsys, monkeypatch):
    from visionkit.callbacks import PredictionWriter

    def write_batch(self, prediction, batch, batch_idx, rank):
        (self.output_dir / f"batch_{batch_idx}.pt").write_bytes(b"")

    monkeypatch.setattr(PredictionWriter, "write_batch", write_batch)
    a = write_config(cwd, "a")
    out = cwd / "preds"
    out.mkdir()
    (out / "old.txt").write_text("earlier run")
    args = ["predict", "--config", a, "--allow_untrained", "true",
            "--trainer.callbacks+=visionkit.callbacks.PredictionWriter",
            f"--trainer.callbacks.output_dir={out}"]
    err = one_error(args, capsys)
    assert str(out) in err and "--clear_predictions" in err
    assert run([*args, "--clear_predictions", "true"], capsys)[0] == 0
    assert not (out / "old.txt").exists() and (out / "batch_0.pt").exists()
    blocked = cwd / "a.yaml" / "preds"  # below a file: cannot be created
    err = one_error([*args[:-1], f"--trainer.callbacks.output_dir={blocked}"], capsys)
    assert "prediction folder" in err and str(blocked) in err


class _Broken(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i):
        raise DataError(f"/data/sample_{i}.txt:3: expected 9 fields, got 2")


def test_worker_error_is_reduced_to_its_line():
    loader = torch.utils.data.DataLoader(_Broken(), batch_size=2, num_workers=1)
    with pytest.raises(DataError) as exc:
        next(iter(loader))
    assert "Traceback" in str(exc.value)  # the worker's traceback travels in the message
    assert _one_line(exc.value) == "/data/sample_0.txt:3: expected 9 fields, got 2"


@pytest.mark.parametrize("error", ["data", "key"])
def test_error_in_a_loader_worker_is_one_line(cwd, capsys, monkeypatch, error):
    import toy

    read = toy._ToyData.__getitem__

    def damaged(self, i):
        if i == 5:
            if error == "data":
                raise DataError("/data/train/sample_5.npz: array 'x' has 7 values, 8 expected")
            return {}["x"]
        return read(self, i)

    monkeypatch.setattr(toy._ToyData, "__getitem__", damaged)  # the forked worker inherits the patch
    a = write_config(cwd, "a")
    err = one_error(["fit", "--config", a, "--data.init_args.num_workers", "1"], capsys)
    expected = ("error: /data/train/sample_5.npz: array 'x' has 7 values, 8 expected" if error == "data"
                else "error: data-loader worker: KeyError: 'x'")
    assert err == expected, err


def test_declared_batch_keys_are_checked_at_build_time(cwd, capsys, monkeypatch):
    import toy

    monkeypatch.setattr(toy.ToyRegressionData, "batch_keys", ("x", "y"), raising=False)
    monkeypatch.setattr(toy.ToyRegressionTask, "required_batch_keys", ("x", "y"), raising=False)
    a = write_config(cwd, "a")
    assert run(["fit", "--config", a, "--trainer.max_steps", "1"], capsys)[0] == 0
    monkeypatch.setattr(toy.ToyRegressionTask, "required_batch_keys", ("past", "x", "y"), raising=False)
    err = one_error(["fit", "--config", a], capsys)
    assert err == ("error: model ToyRegressionTask needs batch keys ['past'] that data ToyRegressionData does not "
                   "yield (it yields ['x', 'y'])")


def test_finiteness_guard_names_the_bad_terms():
    from types import SimpleNamespace

    from visionkit.errors import NonFiniteError
    from visionkit.finite import check_finite_losses

    task = SimpleNamespace(global_step=41, _trainer=None)
    check_finite_losses(task, {"loss": torch.tensor(1.5), "box": torch.tensor(0.5), "count": torch.tensor(3)})
    losses = {"loss": torch.tensor(float("nan")), "box": torch.tensor(0.5), "cls": torch.tensor(float("inf"))}
    with pytest.raises(NonFiniteError) as exc:
        check_finite_losses(task, losses)
    msg = str(exc.value)
    assert msg.startswith("step 41: non-finite loss (loss=nan, cls=inf)") and "box" not in msg


def test_weight_files_named_in_configs_load_safely(tmp_path):
    """``init_weights`` (hands) and ``tokenizer_ckpt`` (generation) refuse a planted payload without running it."""
    from visionkit.tasks.generation.tokenization import load_tokenizer
    from visionkit.tasks.hands.reconstruction import HandReconstructionTask

    marker = tmp_path / "payload_ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "x": _Payload(marker)}, evil)
    with pytest.raises(CheckpointError, match="evil.ckpt"):
        load_tokenizer(evil)
    tiny = {"backbone_kwargs": {"widths": [8, 16, 24, 32, 32], "out_indices": [2, 3, 4]}, "dim": 16, "hidden": 64,
            "bone_channels": 1}
    with pytest.raises(CheckpointError, match="evil.ckpt"):
        HandReconstructionTask(init_weights=str(evil), **tiny)
    assert not marker.exists()
