"""A run killed mid-epoch resumes from last.ckpt and ends with the weights of an uninterrupted run."""

import signal
import subprocess
import sys

import torch
from conftest import subprocess_env

ARGS = ["fit", "--model", "toy.ToyRegressionTask", "--data", "toy.ToyRegressionData", "--data.batch_size", "16",
        "--trainer.max_epochs", "4", "--trainer.enable_progress_bar", "false"]


def _fit(root, extra=(), cwd=None):
    return subprocess.run([sys.executable, "-m", "visionkit", *ARGS, "--trainer.default_root_dir", str(root),
                           *extra], env=subprocess_env(), capture_output=True, text=True, timeout=600, cwd=cwd)


def test_kill_and_resume_matches_uninterrupted(tmp_path):
    full = _fit(tmp_path / "full", cwd=tmp_path)
    assert full.returncode == 0, full.stderr[-2000:]

    # 16 steps per epoch: step 40 is in the middle of the third epoch
    killed = _fit(tmp_path / "resumed", ["--trainer.callbacks+=toy.KillAtStep", "--trainer.callbacks.step=40"],
                  cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    last = tmp_path / "resumed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 1  # the last completed epoch

    resumed = _fit(tmp_path / "resumed", ["--ckpt_path", "last"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    a = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=False)
    b = torch.load(last, weights_only=False)
    assert a["global_step"] == b["global_step"] == 64
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=0, atol=1e-6, msg=k)
