"""``TokenizerTask``: train the VQ-VAE that turns images into the token grids the AR models learn."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanSquaredError, MetricCollection

from visionkit.errors import CheckpointError, DatasetNotFoundError
from visionkit.tasks.base import BaseTask
from visionkit.tasks.generation.metrics import CodebookUsage
from visionkit.tasks.generation.tokenizers import VQVAE

__all__ = ["TokenizerTask", "load_tokenizer"]


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
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
        hp = ckpt["hyper_parameters"]
        model = VQVAE(hp["in_channels"], hp["hidden"], hp["downsample"], hp["num_codes"], hp["code_dim"], hp["beta"])
        sd = {k[len("vqvae."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("vqvae.")}
        model.load_state_dict(sd)
    except (KeyError, RuntimeError, OSError, EOFError, pickle.UnpicklingError) as err:
        raise CheckpointError(f"{p}: not a TokenizerTask checkpoint ({err})") from err
    model.eval()
    for q in model.parameters():
        q.requires_grad_(False)
    return model
