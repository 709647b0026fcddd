"""MotionPredictionTask: the task contract, losses, learning on simulated particles, the CLI."""

from pathlib import Path

import pytest
import torch
import yaml

from visionkit.cli import main
from visionkit.datamodules.motion.particles import ChargedParticles
from visionkit.tasks.motion.prediction import MotionPredictionTask, masked_ade, min_of_k_ade

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "motion"


def test_masked_ade_against_numpy_reference():
    p, t = torch.randn(2, 3, 4, 2), torch.randn(2, 3, 4, 2)
    mask = torch.tensor([[1, 0, 1], [1, 1, 0]], dtype=torch.bool)
    d = ((p - t) ** 2).sum(-1).sqrt().mean(-1).numpy()
    ref = d[mask.numpy()].mean()
    assert abs(masked_ade(p, t, mask).item() - ref) < 1e-6


def test_min_of_k_picks_closest_mode():
    t = torch.randn(1, 2, 5, 3)
    modes = torch.stack([t + 1.0, t + 0.1, t - 3.0], 1)  # (1, 3, 2, 5, 3)
    loss = min_of_k_ade(modes, t, torch.ones(1, 2, dtype=torch.bool))
    assert abs(loss.item() - 0.1 * 3 ** 0.5) < 1e-6


def test_task_contract_shapes():
    task = MotionPredictionTask(past_len=6, future_len=4, dim=2, channels=8, hidden=16, num_layers=1, num_modes=3)
    batch = {"past": torch.randn(2, 5, 6, 2), "future": torch.randn(2, 5, 4, 2),
             "mask": torch.ones(2, 5, dtype=torch.bool)}
    out = task(batch)
    assert out["future"].shape == (2, 5, 4, 2) and out["modes"].shape == (2, 3, 5, 4, 2)
    assert task.training  # forward restores the mode
    losses = task.batch_losses(batch)
    assert set(losses) == {"ade", "loss"} and torch.equal(losses["ade"], losses["loss"])


def test_learning_on_charged_particles(tmp_path):
    """A small EqMotion trained for 150 steps on 64 simulations beats the constant-velocity baseline."""
    torch.manual_seed(0)
    dm = ChargedParticles(num_train=64, num_val=0, num_test=32, num_steps=4000, sample_every=200, past_len=8,
                          future_len=10,
                          cache_dir=str(tmp_path), batch_size=16)
    dm.setup("fit")
    task = MotionPredictionTask(past_len=8, future_len=10, channels=16, hidden=32, num_layers=2, lr=3e-3)
    cv = MotionPredictionTask(model="constant_velocity", past_len=8, future_len=10)
    opt = torch.optim.Adam(task.parameters(), lr=3e-3)
    train = next(iter(torch.utils.data.DataLoader(dm.train_dataset, batch_size=64)))
    test = next(iter(torch.utils.data.DataLoader(dm.test_dataset, batch_size=32)))
    losses = []
    for _ in range(150):
        idx = torch.randperm(64)[:16]
        loss = task.batch_losses({k: v[idx] for k, v in train.items()})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.6 * first
    ade = masked_ade(task(test)["future"], test["future"], test["mask"]).item()
    ade_cv = masked_ade(cv(test)["future"], test["future"], test["mask"]).item()
    print(f"ADE {ade:.4f} constant velocity {ade_cv:.4f} first {first:.3f} last {last:.3f}")
    assert ade < ade_cv


def test_cli_fit_then_test(tmp_path, monkeypatch, capsys):
    cfg = yaml.safe_load((CONFIGS / "particles.yaml").read_text())
    cfg["trainer"].update(max_epochs=1, limit_train_batches=2, limit_val_batches=1, limit_test_batches=1,
                          default_root_dir=str(tmp_path / "run"))
    cfg["trainer"]["callbacks"] = [{"class_path": "visionkit.tasks.motion.callbacks.TrajectoryPlotter",
                                    "init_args": {"num_scenes": 1}}]
    cfg["model"]["init_args"].update(channels=8, hidden=16, num_layers=1)
    cfg["data"]["init_args"].update(num_train=16, num_val=8, num_test=8, num_steps=5000, sample_every=100,
                                     cache_dir=str(tmp_path / "cache"), batch_size=8)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", str(path)])
    assert list((tmp_path / "run").rglob("epoch000_scene0.png"))
    cli = main(["test", "--config", str(path), "--ckpt_path", str(tmp_path / "run" / "checkpoints" / "last.ckpt")])
    metrics = cli.trainer.callback_metrics
    assert {"test_ADE", "test_FDE", "test_MSE"} <= set(metrics) and torch.isfinite(metrics["test_ADE"])


@pytest.mark.slow
def test_particles_config_beats_constant_velocity(tmp_path, monkeypatch):
    """The default config (500/100/100 simulations, 100 epochs, ~10 min on one core): ADE <= 0.6x constant velocity."""
    monkeypatch.chdir(tmp_path)
    config = str(CONFIGS / "particles.yaml")
    main(["fit", "--config", config, "--trainer.default_root_dir", "run"])
    eq = main(["test", "--config", config, "--trainer.default_root_dir", "run",
               "--ckpt_path", "run/checkpoints/last.ckpt"]).trainer.callback_metrics["test_ADE"].item()
    cv = main(["test", "--config", config, "--trainer.default_root_dir", "cv",
               "--model.init_args.model", "constant_velocity"]).trainer.callback_metrics["test_ADE"].item()
    assert eq <= 0.6 * cv
