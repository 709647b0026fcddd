"""The command line: help, list, one-line errors for bad input."""

import subprocess
import sys

import pytest
from conftest import subprocess_env

from visionkit.cli import _condense_parser_error, main
from visionkit.plugins import registered_tasks

TOY = ["--model", "toy.ToyRegressionTask", "--data", "toy.ToyRegressionData"]


def run_cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "visionkit", *args], cwd=cwd, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)


def run_in_process(args, capsys) -> int:
    """Run the CLI in this process; return its exit status (0 when it returns normally)."""
    capsys.readouterr()
    try:
        main(args)
    except SystemExit as exc:
        return exc.code
    return 0


def test_fit_help_lists_every_registered_task(capsys):
    import toy  # noqa: F401  (at least one task even before any family is imported)

    with pytest.raises(SystemExit) as exc:
        main(["fit", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    tasks = registered_tasks()
    assert tasks, "no task registered"
    missing = [t.__name__ for t in tasks if t.__name__ not in out]
    assert not missing, f"fit --help does not list {missing}"


def test_list_prints_registries(capsys):
    import toy  # noqa: F401  (registers the toy classes)

    main(["list"])
    out = capsys.readouterr().out
    assert "ToyRegressionTask" in out and "ToyRegressionData" in out and "simple_cnn" in out


def test_fit_then_test_from_checkpoint(tmp_path):
    root = tmp_path / "run"
    r = run_cli(["fit", *TOY, "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(root)], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    last = root / "checkpoints" / "last.ckpt"
    assert last.is_file()
    assert (root / "version_0" / "metrics.csv").is_file()
    assert any(p.name.startswith("best-") for p in (root / "checkpoints").iterdir())
    r = run_cli(["test", *TOY, "--ckpt_path", str(last), "--trainer.default_root_dir", str(root)], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "test_MeanSquaredError" in r.stdout


@pytest.mark.parametrize(
    "args, expected",
    [
        (["fit", *TOY, "--model.hiden", "3"], "Option 'hiden' is not accepted"),
        (["fit", *TOY, "--trainer.max_epoch", "3"], "--trainer.max_epoch"),
        (["fit", "--model", "NoSuchTask", "--data", "toy.ToyRegressionData"], "unknown class 'NoSuchTask'"),
        (["fit", *TOY, "--data.root", "/no/such/dataset"], "data.init_args.root: /no/such/dataset does not exist"),
    ],
)
def test_bad_input_gives_one_line_error(tmp_path, monkeypatch, capsys, args, expected):
    monkeypatch.chdir(tmp_path)
    assert run_in_process(args, capsys) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], errors


def test_misspelt_key_in_yaml_names_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  class_path: toy.ToyRegressionTask\n  init_args:\n    hiden: 3\n"
                   "data:\n  class_path: toy.ToyRegressionData\n")
    assert run_in_process(["fit", "--config", str(cfg)], capsys) == 2
    assert "model: Option 'hiden' is not accepted" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_corrupt_checkpoint_is_named(tmp_path, monkeypatch, capsys, damage):
    import torch

    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1000)}}, ckpt)
    data = ckpt.read_bytes()
    if damage == "truncate":
        ckpt.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        ckpt.write_bytes(b"not a checkpoint" * 10)
    else:
        ckpt.unlink()
    monkeypatch.chdir(tmp_path)
    assert run_in_process(["test", *TOY, "--ckpt_path", str(ckpt)], capsys) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and str(ckpt) in errors[0]


def test_condense_keeps_the_culprit():
    text = 'Parser key "model":\n  Problem with given class_path \'a.B\':\n    Option \'x\' is not accepted\n'
    assert _condense_parser_error(text) == "model: Option 'x' is not accepted (in a.B)"
