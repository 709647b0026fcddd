"""Offline quality metrics of generated images: judge accuracy, FID/KID in a judge's features, token NLL.

No network is downloaded: FID and KID use torchmetrics with a custom ``feature`` module wrapping a judge
classifier trained on the real training split (see ``visionkit.tasks.generation.judge``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

__all__ = ["CodebookUsage", "JudgeAccuracy", "JudgeFeatures", "JudgeKID", "TokenNLL", "judge_fid", "judge_kid"]


class JudgeFeatures(nn.Module):
    """Feature extractor for torchmetrics: images ``(B, C, *S)`` in [0, 1] -> ``(B, F)`` judge features.

    Args:
        judge: a module with ``features(images)`` and an int ``num_features`` (kept frozen, eval mode).
    """

    def __init__(self, judge: nn.Module) -> None:
        super().__init__()
        self.judge = judge.eval()
        for p in self.judge.parameters():
            p.requires_grad_(False)
        self.num_features = int(judge.num_features)

    def train(self, mode: bool = True) -> JudgeFeatures:  # the judge stays frozen (BatchNorm statistics)
        super().train(False)
        return self

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        return self.judge.features(images.float())


class JudgeAccuracy(Metric):
    """Fraction of samples that the judge assigns to the class they were generated for.

    Args:
        judge: classifier ``(B, C, *S) -> (B, K)`` logits (frozen).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, judge: nn.Module, **kwargs) -> None:
        super().__init__(**kwargs)
        self.judge = JudgeFeatures(judge).judge
        self.add_state("correct", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, images: Tensor, labels: Tensor) -> None:
        """``images (B, C, *S)`` in [0, 1] generated for ``labels (B,)``."""
        self.judge.eval()
        with torch.no_grad():
            pred = self.judge(images.float()).argmax(-1)
        self.correct += (pred == labels).sum().double()
        self.total += labels.numel()

    def compute(self) -> Tensor:
        return (self.correct / self.total.clamp(min=1)).float()


class TokenNLL(Metric):
    """Mean negative log-likelihood per token (nats) and bits per token of teacher-forced logits."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("nll_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, tokens: Tensor) -> None:
        """``logits (B, N, V)``, ``tokens (B, N)`` (or any shapes ``(..., V)`` / ``(...)``)."""
        logp = torch.log_softmax(logits.double().reshape(-1, logits.shape[-1]), dim=-1)
        self.nll_sum -= logp.gather(1, tokens.reshape(-1, 1)).sum()
        self.count += tokens.numel()

    def compute(self) -> dict[str, Tensor]:
        nll = self.nll_sum / self.count.clamp(min=1)
        return {"token_nll": nll.float(), "bits_per_token": (nll / math.log(2.0)).float()}


def judge_fid(judge: nn.Module, **kwargs) -> FrechetInceptionDistance:
    """FID between real and generated images in the judge's features. Update with ``(images, real=bool)``."""
    return FrechetInceptionDistance(feature=JudgeFeatures(judge), **kwargs)


class JudgeKID(KernelInceptionDistance):
    """KID (unbiased polynomial-kernel MMD over random subsets) in the judge's features.

    ``compute`` returns ``{"kid", "kid_std"}`` and shrinks the subset size to the number of samples available.
    """

    def compute(self) -> dict[str, Tensor]:
        n = min(sum(int(f.shape[0]) for f in _as_list(self.real_features)),
                sum(int(f.shape[0]) for f in _as_list(self.fake_features)))
        size = self.subset_size
        self.subset_size = max(2, min(size, n))
        try:
            mean, std = super().compute()
        finally:
            self.subset_size = size
        return {"kid": mean, "kid_std": std}


def _as_list(x: Tensor | list[Tensor]) -> list[Tensor]:
    return list(x) if isinstance(x, list | tuple) else [x]


def judge_kid(judge: nn.Module, subset_size: int = 100, subsets: int = 50, **kwargs) -> JudgeKID:
    """KID in the judge's features. Update with ``(images, real=bool)``; ``compute`` -> ``{"kid", "kid_std"}``."""
    return JudgeKID(feature=JudgeFeatures(judge), subset_size=subset_size, subsets=subsets, **kwargs)


class CodebookUsage(Metric):
    """Codebook usage of a vector quantizer: fraction of codes used and perplexity of the code histogram.

    Args:
        num_codes: codebook size.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_codes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_codes = num_codes
        self.add_state("counts", torch.zeros(num_codes, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, codes: Tensor) -> None:
        """``codes``: long code ids of any shape."""
        self.counts += torch.bincount(codes.reshape(-1), minlength=self.num_codes).double()

    def compute(self) -> dict[str, Tensor]:
        p = self.counts / self.counts.sum().clamp(min=1)
        entropy = -(p * p.clamp(min=1e-12).log()).sum()
        return {"codebook_usage": (self.counts > 0).double().mean().float(),
                "codebook_perplexity": entropy.exp().float()}
