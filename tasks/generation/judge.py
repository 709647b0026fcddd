"""The judge: a small classifier trained on the real training split, frozen, whose features score samples.

Judge accuracy (does a class-conditional sample look like its class?) and FID/KID computed in the judge's
penultimate features need no downloaded network. Train it with ``configs/generation/digits_judge.yaml``; the
task saves the frozen judge to ``save_path`` at the end of fitting, and generation tasks load it from there.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from visionkit.errors import CheckpointError, DatasetNotFoundError
from visionkit.io import atomic_open, load_torch
from visionkit.tasks.base import BaseTask
from visionkit.tasks.generation.pretraining import freeze, train_frozen

__all__ = ["JudgeClassifier", "JudgeTask", "load_judge", "save_judge", "train_judge"]


class JudgeClassifier(nn.Module):
    """Conv classifier for small images ``(B, C, H, W)`` or volumes ``(B, C, D, H, W)`` in [0, 1].

    Args:
        in_channels: image channels.
        num_classes: classes.
        width: channels of the first stage (doubled in the second).
        feature_dim: width of the penultimate features used for FID/KID.
        spatial_dims: 2 for images, 3 for voxel volumes.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32, feature_dim: int = 64,
                 spatial_dims: int = 2) -> None:
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        norm = nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d
        pool = nn.AdaptiveAvgPool2d(1) if spatial_dims == 2 else nn.AdaptiveAvgPool3d(1)
        self.config = {"in_channels": in_channels, "num_classes": num_classes, "width": width,
                       "feature_dim": feature_dim, "spatial_dims": spatial_dims}
        self.trunk = nn.Sequential(
            conv(in_channels, width, 3, padding=1), norm(width), nn.ReLU(),
            conv(width, width, 3, padding=1), norm(width), nn.ReLU(),
            conv(width, 2 * width, 3, stride=2, padding=1), norm(2 * width), nn.ReLU(),
            conv(2 * width, 2 * width, 3, padding=1), norm(2 * width), nn.ReLU(),
            pool, nn.Flatten(), nn.Linear(2 * width, feature_dim), nn.ReLU(),
        )
        self.classifier = nn.Linear(feature_dim, num_classes)
        self.num_features = feature_dim

    def features(self, images: Tensor) -> Tensor:
        """``(B, C, *S)`` -> ``(B, feature_dim)`` penultimate features."""
        return self.trunk(images.float())

    def forward(self, images: Tensor) -> Tensor:
        """``(B, C, *S)`` -> ``(B, num_classes)`` logits."""
        return self.classifier(self.features(images))


def save_judge(judge: JudgeClassifier, path: str | Path) -> None:
    """Save the judge's config and weights (atomically)."""
    with atomic_open(path, "wb") as f:
        torch.save({"config": judge.config, "state_dict": judge.state_dict()}, f)


def load_judge(path: str | Path, key: str = "model.init_args.judge_path") -> JudgeClassifier:
    """Load a saved judge, frozen and in eval mode; errors name ``path`` and the config ``key``."""
    p = Path(path)
    if not p.exists():
        raise DatasetNotFoundError(f"{key}: judge file {p} does not exist (train it first, see docs/generation.md)")
    try:
        blob = load_torch(p)  # tensors and plain values only
        judge = JudgeClassifier(**blob["config"])
        judge.load_state_dict(blob["state_dict"])
    except (KeyError, RuntimeError, OSError, EOFError, pickle.UnpicklingError) as err:
        raise CheckpointError(f"{p}: not a judge file ({err})") from err
    return freeze(judge)


def train_judge(dataset: Dataset, in_channels: int, num_classes: int, spatial_dims: int = 2, steps: int = 600,
                batch_size: int = 64, lr: float = 2e-3, weight_decay: float = 1e-4, noise: float = 0.05,
                warmup_steps: int = 20, seed: int = 0, device: str | torch.device = "cpu",
                progress: bool = True) -> JudgeClassifier:
    """Train a judge on ``dataset`` (samples with ``image`` in [0, 1] and ``label``) with the recipe of the
    judge configs: AdamW, linear warm-up then cosine decay over ``steps``, Gaussian pixel noise ``noise``.

    Args:
        dataset: the real training split.
        in_channels, num_classes, spatial_dims: see :class:`JudgeClassifier` (width 32, 64-d features).
        steps: optimiser steps (600 x 64 images: ~30 epochs of the digits).
        device: where to train.
        progress: print one progress line every 10 % of the steps.

    Returns:
        The trained judge, frozen, in eval mode, on the CPU.
    """
    def step_loss(judge: nn.Module, batch: dict[str, Any], g: torch.Generator) -> tuple[Tensor, str]:
        x, y = batch["image"].float(), batch["label"].long()
        if noise > 0:
            x = (x + noise * torch.randn(x.shape, generator=g).to(x.device)).clamp(0, 1)
        loss = F.cross_entropy(judge(x), y)
        return loss, f"loss={loss.item():.4f}"

    torch.manual_seed(seed)  # the judge's initial weights
    judge = JudgeClassifier(in_channels, num_classes, 32, 64, spatial_dims)
    return train_frozen(judge, dataset, step_loss, steps, batch_size, lr, weight_decay, warmup_steps, seed, device,
                        progress, "judge")


class JudgeTask(BaseTask):
    """Train the judge classifier on real images; at the end of fitting save it frozen to ``save_path``.

    Batches need ``image (B, C, *S)`` in [0, 1] and ``label (B,)``. ``task(batch)`` returns ``logits``.

    Args:
        in_channels, num_classes, width, feature_dim, spatial_dims: see :class:`JudgeClassifier`.
        save_path: where the frozen judge is written.
        noise: std of Gaussian pixel noise added in training (makes the judge robust to sampling noise).
    """

    monitor = "val_accuracy"
    monitor_mode = "max"

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32, feature_dim: int = 64,
                 spatial_dims: int = 2, save_path: str = "runs/judges/digits_judge.pt", noise: float = 0.05,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        hp = self.hparams
        self.judge = JudgeClassifier(hp.in_channels, hp.num_classes, hp.width, hp.feature_dim, hp.spatial_dims)

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"accuracy": MulticlassAccuracy(self.hparams.num_classes, average="micro")})

    def compute_outputs(self, batch: dict[str, Any]) -> Tensor:
        """Class logits ``(B, C)``; training images get gaussian noise of std ``noise``."""
        x = batch["image"]
        if self.training and self.hparams.noise > 0:
            x = (x + self.hparams.noise * torch.randn_like(x)).clamp(0, 1)
        return self.judge(x)

    def compute_losses(self, outputs: Tensor, batch: dict[str, Any]) -> dict[str, Tensor]:
        return {"loss": F.cross_entropy(outputs, batch["label"])}

    def postprocess(self, outputs: Tensor, batch: dict[str, Any]) -> dict[str, Any]:
        return {"logits": outputs}

    def update_metrics(self, metrics: MetricCollection, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        metrics.update(preds["logits"], batch["label"])

    def on_fit_end(self) -> None:
        if self.trainer.is_global_zero:
            save_judge(self.judge, self.hparams.save_path)
