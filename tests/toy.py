"""A tiny regression task and datamodule used by the framework tests (CLI, plugins, DDP, resume)."""

from __future__ import annotations

import os
import signal

import torch
from lightning.pytorch import Callback
from torch import nn
from torch.utils.data import Dataset
from torchmetrics import MeanSquaredError, MetricCollection

from visionkit.datamodules.base import BaseDataModule
from visionkit.tasks.base import BaseTask


class ToyRegressionTask(BaseTask):
    """Linear-ish regression of y = W x with an MLP; metric: MSE."""

    monitor = "val_MeanSquaredError"

    def __init__(self, in_dim: int = 8, hidden: int = 32, dropout: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        self.net = nn.Sequential(nn.Linear(self.hparams.in_dim, self.hparams.hidden), nn.Tanh(),
                                 nn.Dropout(self.hparams.dropout), nn.Linear(self.hparams.hidden, 1))

    def make_metrics(self) -> MetricCollection:
        return MetricCollection([MeanSquaredError()])

    def compute_outputs(self, batch):
        return self.net(batch["x"]).squeeze(-1)

    def compute_losses(self, outputs, batch):
        return {"loss": nn.functional.mse_loss(outputs, batch["y"])}

    def postprocess(self, outputs, batch):
        return {"y": outputs}

    def update_metrics(self, metrics, preds, batch) -> None:
        metrics.update(preds["y"], batch["y"])


class KillAtStep(Callback):
    """Kills the process with SIGKILL at a given global step (simulates a crash mid-epoch)."""

    def __init__(self, step: int = 10) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class _ToyData(Dataset):
    def __init__(self, n: int, dim: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, dim, generator=g)
        w = torch.linspace(-1, 1, dim)
        self.y = self.x @ w + 0.1 * torch.randn(n, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


class ToyRegressionData(BaseDataModule):
    """Random linear regression data (seeded)."""

    def __init__(self, num_train: int = 256, num_val: int = 64, dim: int = 8, root: str | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_train, self.num_val, self.dim, self.root = num_train, num_val, dim, root

    def setup(self, stage: str | None = None) -> None:
        if self.root is not None:
            self.check_path(self.root, "data.init_args.root")
        self.train_dataset = _ToyData(self.num_train, self.dim, 1)
        self.val_dataset = _ToyData(self.num_val, self.dim, 2)
        self.test_dataset = _ToyData(self.num_val, self.dim, 3)
