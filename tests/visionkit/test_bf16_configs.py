"""``--trainer.precision bf16-mixed`` (CPU autocast) runs a training step of every family's synthetic config.

In-process ``fast_dev_run`` (one training and one validation batch) on few samples. Forward hooks on the
linear and convolution layers check that autocast really ran them in bfloat16 (EqMotion, whose features are
coordinates, must run all of them in float32); the step must end with finite losses and finite weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from visionkit.cli import VisionKitCLI
from visionkit.plugins import import_builtins

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter:UserWarning")


def data(**kw) -> list[str]:
    return [a for k, v in kw.items() for a in (f"--data.init_args.{k}", str(v))]


CONFIGS = {
    "obb/synthetic.yaml": data(num_train=4, num_val=2, num_test=2, batch_size=2, image_size=64),
    "obb/pointobb_synthetic.yaml": data(num_train=4, num_val=2, num_test=2, batch_size=2, image_size=64),
    "pointcloud/synthetic_fa_pointnet_seg.yaml": data(num_train=8, num_val=4, num_test=4, batch_size=4,
                                                      cache_dir="pc_cache"),
    "pointcloud/synthetic_parot_cls.yaml": data(num_train=8, num_val=4, num_test=4, batch_size=4,
                                                cache_dir="pc_cache"),
    "motion/particles.yaml": data(num_train=4, num_val=2, num_test=2, batch_size=2, cache_dir="particles_cache"),
    "generation/digits_raster.yaml": data(batch_size=8) + ["--model.init_args.judge_path", "null"],
    "generation/shapes_vqvae.yaml": data(num_train=24, num_val=12, num_test=12, batch_size=8),
    "hands/synthetic.yaml": data(num_train=4, num_val=2, num_test=2, batch_size=2),
}
FLOAT32_MODELS = {"motion/particles.yaml"}  # EqMotion: float32 inside autocast (visionkit.ops.precision)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_bf16_mixed_training_step(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import_builtins()
    args = ["--config", str(REPO / "configs" / name), "--trainer.fast_dev_run", "1", "--trainer.precision",
            "bf16-mixed", "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.logger", "false",
            "--trainer.default_root_dir", str(tmp_path), "--data.init_args.num_workers", "0", *CONFIGS[name]]
    cli = VisionKitCLI(args=args, run=False)
    task, trainer = cli.model, cli.trainer
    seen: set[torch.dtype] = set()
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.add(out.dtype) if torch.is_tensor(out) else None)
             for m in task.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d)]
    losses: list[float] = []

    def on_train_batch_end(outputs, *_):  # the task's own hook records the optimised loss
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        losses.append(float(loss))

    task.on_train_batch_end = on_train_batch_end
    trainer.fit(task, cli.datamodule)
    for h in hooks:
        h.remove()
    assert trainer.state.finished and trainer.global_step == 1
    if name in FLOAT32_MODELS:
        assert seen == {torch.float32}, seen
    else:
        assert torch.bfloat16 in seen, f"no layer ran in bfloat16: {seen}"
    assert losses and all(math.isfinite(v) for v in losses), losses
    assert all(torch.isfinite(p).all() for p in task.parameters())
    assert all(p.dtype == torch.float32 for p in task.parameters())  # mixed precision keeps float32 weights
