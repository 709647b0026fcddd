"""Short, self-contained training of the frozen helper networks (judge, tokenizer) that a config can make
for itself in ``prepare_data``: seeded batches drawn with replacement, AdamW, linear warm-up then cosine decay."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, RandomSampler

__all__ = ["freeze", "train_frozen"]


def train_frozen(model: nn.Module, dataset: Dataset, step_loss: Callable[[nn.Module, dict[str, Any],
                                                                          torch.Generator], tuple[Tensor, str]],
                 steps: int, batch_size: int, lr: float, weight_decay: float, warmup_steps: int, seed: int,
                 device: str | torch.device, progress: bool, desc: str) -> nn.Module:
    """Train ``model`` for ``steps`` optimiser steps, then return it frozen, in eval mode, on the CPU.

    Args:
        model: the network (moved to ``device``).
        dataset: samples collated with :func:`~visionkit.datamodules.base.collate_dict`.
        step_loss: ``(model, batch on the device, generator) -> (loss, progress text)``; the generator is the
            seeded one that also draws the batches.
        steps, batch_size, lr, weight_decay, warmup_steps: the recipe.
        seed: seeds the batches (the caller seeds the initial weights).
        device: where to train.
        progress: print a line ``<desc>: step k/steps <text>`` every 10 % of the steps.
        desc: prefix of the progress lines.
    """
    from visionkit.datamodules.base import collate_dict

    g = torch.Generator().manual_seed(seed)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min(1.0, (k + 1) / max(1, warmup_steps)) * 0.5 * (1 + math.cos(math.pi * min(k, steps) / steps)))
    sampler = RandomSampler(dataset, replacement=True, num_samples=steps * batch_size, generator=g)
    loader = DataLoader(dataset, batch_size, sampler=sampler, collate_fn=collate_dict, drop_last=True)
    model.train()
    every = max(1, steps // 10)
    for k, batch in enumerate(loader):
        batch = {key: v.to(device) if torch.is_tensor(v) else v for key, v in batch.items()}
        loss, text = step_loss(model, batch, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress and ((k + 1) % every == 0 or k + 1 == steps):
            print(f"{desc}: step {k + 1}/{steps} {text}", file=sys.stdout, flush=True)
    return freeze(model.cpu())


def freeze(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with every parameter frozen (a judge or tokenizer is never trained further)."""
    model.eval()
    for q in model.parameters():
        q.requires_grad_(False)
    return model
