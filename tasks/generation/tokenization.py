"""``TokenizerTask``: train the VQ-VAE that turns images into the token grids the AR models learn."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset
from torchmetrics import MeanSquaredError, MetricCollection

from visionkit.errors import CheckpointError, DatasetNotFoundError
from visionkit.io import atomic_open, load_torch
from visionkit.tasks.base import BaseTask
from visionkit.tasks.generation.metrics import CodebookUsage
from visionkit.tasks.generation.pretraining import freeze, train_frozen
from visionkit.tasks.generation.tokenizers import VQVAE

__all__ = ["SHAPES_TOKENIZER_ARGS", "TOKENIZER_ARCH_KEYS", "TokenizerTask", "load_tokenizer", "save_tokenizer",
           "tokenizer_config", "train_tokenizer"]

#: VQ-VAE architecture keys (the ``TokenizerTask`` arguments that shape the model)
TOKENIZER_ARCH_KEYS = ("in_channels", "hidden", "downsample", "num_codes", "code_dim", "beta")
#: the architecture of configs/generation/shapes_vqvae.yaml
SHAPES_TOKENIZER_ARGS: dict[str, Any] = {"in_channels": 3, "hidden": 48, "downsample": 4, "num_codes": 64,
                                         "code_dim": 16, "beta": 0.25}


class TokenizerTask(BaseTask):
    """VQ-VAE training: reconstruction MSE + codebook loss + ``beta`` x commitment loss.

    ``task(batch)`` returns ``{"tokens": (B, H/f, W/f) long, "recon": (B, C, H, W)}``. Metrics: ``recon_mse``,
    ``codebook_usage`` (fraction of codes used on the split) and ``codebook_perplexity``.

    Args:
        in_channels: image channels.
        hidden: convolution width.
        downsample: spatial reduction factor ``f``.
        num_codes: codebook size.
        code_dim: code width.
        beta: commitment weight.
    """

    monitor = "val_recon_mse"
    monitor_mode = "min"

    def __init__(self, in_channels: int = 3, hidden: int = 64, downsample: int = 4, num_codes: int = 64,
                 code_dim: int = 16, beta: float = 0.25, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        hp = self.hparams
        self.vqvae = VQVAE(hp.in_channels, hp.hidden, hp.downsample, hp.num_codes, hp.code_dim, hp.beta)

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"recon_mse": MeanSquaredError(), "usage": CodebookUsage(self.hparams.num_codes)},
                                compute_groups=False)

    def compute_outputs(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        """``(reconstruction, codes, vq loss)`` of the VQ-VAE."""
        return self.vqvae(batch["image"])

    def compute_losses(self, outputs: tuple[Tensor, Tensor, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        recon, _, vq = outputs
        rec = F.mse_loss(recon, batch["image"])
        return {"loss": rec + vq, "recon": rec, "vq": vq}

    def postprocess(self, outputs: tuple[Tensor, Tensor, Tensor], batch: dict[str, Any]) -> dict[str, Any]:
        return {"tokens": outputs[1], "recon": outputs[0]}

    def update_metrics(self, metrics: MetricCollection, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        metrics["recon_mse"].update(preds["recon"].contiguous(), batch["image"].contiguous())
        metrics["usage"].update(preds["tokens"])


def load_tokenizer(path: str | Path, key: str = "model.init_args.tokenizer_ckpt") -> VQVAE:
    """Load the VQ-VAE of a ``TokenizerTask`` checkpoint, frozen and in eval mode."""
    p = Path(path)
    if not p.exists():
        raise DatasetNotFoundError(
            f"{key}: tokenizer checkpoint {p} does not exist: train a TokenizerTask on the same images first (the "
            "shapes configs: python -m visionkit fit --config configs/generation/shapes_vqvae.yaml)")
    try:
        ckpt = load_torch(p)  # tensors and plain values only
        hp = ckpt["hyper_parameters"]
        model = VQVAE(hp["in_channels"], hp["hidden"], hp["downsample"], hp["num_codes"], hp["code_dim"], hp["beta"])
        sd = {k[len("vqvae."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("vqvae.")}
        model.load_state_dict(sd)
    except (KeyError, RuntimeError, OSError, EOFError, pickle.UnpicklingError) as err:
        raise CheckpointError(f"{p}: not a TokenizerTask checkpoint ({err})") from err
    return freeze(model)


def tokenizer_config(model: VQVAE) -> dict[str, Any]:
    """The architecture arguments (:data:`TOKENIZER_ARCH_KEYS`) that rebuild ``model``."""
    conv = model.encoder[0]
    return {"in_channels": int(model.channels), "hidden": int(conv.out_channels), "downsample": int(model.downsample),
            "num_codes": int(model.vocab_size), "code_dim": int(model.quantizer.code_dim),
            "beta": float(model.quantizer.beta)}


def save_tokenizer(model: VQVAE, path: str | Path) -> None:
    """Save ``model`` atomically as a minimal ``TokenizerTask`` checkpoint (``hyper_parameters`` and
    ``state_dict`` with ``vqvae.`` keys), readable by :func:`load_tokenizer` with ``weights_only=True``."""
    sd = {f"vqvae.{k}": v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_open(path, "wb") as f:
        torch.save({"hyper_parameters": tokenizer_config(model), "state_dict": sd}, f)


def train_tokenizer(dataset: Dataset, args: dict[str, Any] | None = None, steps: int = 1125, batch_size: int = 64,
                    lr: float = 2e-3, warmup_steps: int = 50, seed: int = 0, device: str | torch.device = "cpu",
                    progress: bool = True, desc: str = "tokenizer") -> VQVAE:
    """Train a VQ-VAE on the ``image`` s of ``dataset`` with the recipe of shapes_vqvae.yaml: loss = MSE + VQ
    loss, AdamW (no weight decay), linear warm-up then cosine decay over ``steps``, batches drawn with
    replacement.

    Args:
        dataset: samples with ``image (C, H, W)`` in [0, 1].
        args: VQ-VAE architecture (:data:`TOKENIZER_ARCH_KEYS`; missing keys from :data:`SHAPES_TOKENIZER_ARGS`).
        steps: optimiser steps.
        device: where to train.
        progress: print one progress line every 10 % of the steps.
        desc: prefix of the progress lines.

    Returns:
        The trained VQ-VAE, frozen, in eval mode, on the CPU.
    """
    if steps < 1:
        raise ValueError(f"train_tokenizer: steps must be >= 1, got {steps}")

    def step_loss(model: nn.Module, batch: dict[str, Any], g: torch.Generator) -> tuple[Tensor, str]:
        x = batch["image"].float()
        recon, _, vq = model(x)
        rec = F.mse_loss(recon, x)
        return rec + vq, f"recon_mse={rec.item():.5f}"

    torch.manual_seed(seed)  # the initial weights
    model = VQVAE(**{**SHAPES_TOKENIZER_ARGS, **(args or {})})
    return train_frozen(model, dataset, step_loss, steps, batch_size, lr, 0.0, warmup_steps, seed, device, progress,
                        desc)
