"""Output folders of callbacks: the folder ``trainer.log_dir`` names, found without a collective call."""

from types import SimpleNamespace

import pytest
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from visionkit.paths import output_dir, run_dir


@pytest.mark.parametrize("loggers", ["tb+csv", "csv", "none"])
def test_run_dir_is_trainer_log_dir_without_broadcast(tmp_path, monkeypatch, loggers):
    if loggers == "tb+csv":
        tb = TensorBoardLogger(tmp_path, name="", default_hp_metric=False)
        logger = [tb, CSVLogger(tmp_path, name="", version=tb.version)]
    else:
        logger = [CSVLogger(tmp_path / "csv", name="x")] if loggers == "csv" else False
    trainer = Trainer(default_root_dir=tmp_path, logger=logger, accelerator="cpu", devices=1,
                      enable_progress_bar=False, enable_model_summary=False)
    expected = trainer.log_dir  # the broadcasting property (one process: its own value)

    def no_collective(*args, **kwargs):
        raise AssertionError("a collective was called")

    monkeypatch.setattr(trainer.strategy, "broadcast", no_collective)
    monkeypatch.setattr(trainer.strategy, "barrier", no_collective)
    assert str(run_dir(trainer)) == str(expected)
    assert output_dir(trainer, "pictures") == run_dir(trainer) / "pictures"
    assert output_dir(trainer, "pictures", tmp_path / "mine") == tmp_path / "mine"


def test_run_dir_of_an_object_without_loggers(tmp_path):
    assert run_dir(SimpleNamespace(loggers=[], default_root_dir=str(tmp_path))) == tmp_path
    assert run_dir(SimpleNamespace(loggers=[SimpleNamespace(experiment=None)], default_root_dir=str(tmp_path))) \
        == tmp_path
