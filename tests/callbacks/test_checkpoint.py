"""``TaskCheckpoint``: ``last.ckpt`` is the latest state even when the monitored metric stops improving."""

import torch
from lightning.pytorch import Trainer
from toy import ToyRegressionData, ToyRegressionTask

from visionkit.callbacks import AtomicCheckpointIO, TaskCheckpoint


class WorseningTask(ToyRegressionTask):
    """The toy whose monitor is maximised: the validation MSE falls, so only epoch 0 is ever 'best'."""

    monitor_mode = "max"


def test_last_checkpoint_follows_training_not_the_best(tmp_path):
    ckpt = TaskCheckpoint(dirpath=tmp_path / "checkpoints")
    trainer = Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, callbacks=[ckpt], plugins=[AtomicCheckpointIO()],
                      default_root_dir=tmp_path)
    trainer.fit(WorseningTask(lr=0.01), datamodule=ToyRegressionData(batch_size=32))
    best = torch.load(ckpt.best_model_path, weights_only=False)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert best["epoch"] == 0  # the metric kept falling, so the 'max' best stayed at the first epoch
    assert last["global_step"] == trainer.global_step > best["global_step"]
    assert last["epoch"] == 2
    weights = trainer.lightning_module.state_dict()
    for k, v in last["state_dict"].items():
        torch.testing.assert_close(v, weights[k])


def test_non_finite_weights_are_never_saved(tmp_path):
    from types import SimpleNamespace

    import pytest

    from visionkit.errors import NonFiniteError

    task = ToyRegressionTask()
    ckpt = TaskCheckpoint(dirpath=tmp_path)
    with torch.no_grad():
        task.net[0].weight[2, 1] = float("nan")
    trainer = SimpleNamespace(lightning_module=task, global_step=7)
    with pytest.raises(NonFiniteError, match=r"step 7: not saving .*last.ckpt: non-finite values in net.0.weight"):
        ckpt._save_checkpoint(trainer, str(tmp_path / "last.ckpt"))
    assert not list(tmp_path.iterdir())
