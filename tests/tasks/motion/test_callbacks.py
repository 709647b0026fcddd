"""Motion callbacks: trajectory pictures, NPZ writer, equivariance regulariser."""

import json

import numpy as np
import pytest
import torch

from visionkit.tasks.motion.callbacks import EquivarianceRegulariser, NPZWriter, plot_trajectories
from visionkit.tasks.motion.prediction import MotionPredictionTask


def test_plot_trajectories_draws_present_agents_only():
    past, fut = torch.randn(3, 5, 2).cumsum(1), torch.randn(3, 4, 2).cumsum(1)
    fig = plot_trajectories(past, fut, fut + 0.1, mask=torch.tensor([True, False, True]))
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 * 4  # past, last point, true, predicted per present agent
    np.testing.assert_allclose(lines[0].get_xydata(), past[0].numpy())


def test_npz_writer(tmp_path):
    w = NPZWriter(str(tmp_path / "pred"))
    batch = {"past": torch.randn(2, 3, 5, 3), "future": torch.randn(2, 3, 4, 3), "mask": torch.ones(2, 3).bool()}
    pred = {"future": torch.randn(2, 3, 4, 3), "modes": torch.randn(2, 6, 3, 4, 3)}
    w.output_dir.mkdir(parents=True)
    w.write_batch(pred, batch, 0, rank=0)
    w.write_batch(pred, batch, 1, rank=0)
    w.finalize(0, 1)
    index = json.loads((tmp_path / "pred" / "index_rank0.json").read_text())
    assert index["files"] == ["pred_rank0_batch00000.npz", "pred_rank0_batch00001.npz"]
    z = np.load(tmp_path / "pred" / index["files"][1])
    np.testing.assert_array_equal(z["future"], pred["future"].numpy())
    np.testing.assert_array_equal(z["target"], batch["future"].numpy())
    assert z["modes"].shape == (2, 6, 3, 4, 3) and z["mask"].dtype == bool
    assert not list((tmp_path / "pred").glob("*.tmp"))


class _MLP(torch.nn.Module):
    """A deliberately non-equivariant predictor (a linear map of raw coordinates)."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(15, 12)

    def forward(self, past, mask=None):
        B, A = past.shape[:2]
        return {"future": self.net(past.reshape(B, A, -1)).view(B, A, 4, 3)}


def test_regulariser_zero_for_eqmotion_positive_otherwise_and_trains():
    batch = {"past": torch.randn(4, 3, 5, 3).cumsum(2), "future": torch.randn(4, 3, 4, 3),
             "mask": torch.ones(4, 3, dtype=torch.bool)}
    reg = EquivarianceRegulariser(weight=2.0)
    eq = MotionPredictionTask(past_len=5, future_len=4, channels=8, hidden=16, num_layers=1)
    assert reg.penalty(eq, batch).item() < 1e-8
    task = MotionPredictionTask(past_len=5, future_len=4, channels=8, hidden=16, num_layers=1)
    task.model = _MLP()
    reg.setup(None, task, "fit")
    losses = task.batch_losses(batch)
    assert set(losses) == {"ade", "equivariance", "loss"}
    torch.testing.assert_close(losses["loss"], losses["ade"] + losses["equivariance"])
    before = losses["equivariance"].item()
    assert before > 1e-2
    opt = torch.optim.SGD(task.parameters(), lr=0.01)
    for _ in range(100):  # the regulariser's gradient alone makes the model more equivariant
        opt.zero_grad()
        task.batch_losses(batch)["equivariance"].backward()
        opt.step()
    torch.manual_seed(0)
    assert 2.0 * reg.penalty(task, batch).item() < 0.5 * before
    task.eval()
    assert "equivariance" not in task.batch_losses(batch)  # training-only term
    with pytest.raises(TypeError, match="loss_terms"):
        reg.setup(None, torch.nn.Module(), "fit")
