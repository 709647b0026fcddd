"""The finiteness guard: a NaN or inf loss stops training with one line instead of a run of NaN checkpoints."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from visionkit.errors import NonFiniteError


def check_finite_losses(task: Any, losses: dict[str, Tensor]) -> None:
    """Raise :class:`NonFiniteError` naming the step and the non-finite terms if any loss is NaN or inf.

    Called by the task's training step before the backward pass, so the weights never take a non-finite
    update. Under several processes every process learns whether any of them saw a non-finite loss (one
    all-reduce of a flag), so all stop together instead of one waiting for the others.

    Args:
        task: the running ``LightningModule`` (for its step, rank and trainer).
        losses: the loss dict of the batch (``"loss"`` and its terms).
    """
    terms = {k: v for k, v in losses.items() if torch.is_tensor(v) and v.is_floating_point()}
    bad: list[str] = []
    if terms:
        finite = torch.stack([torch.isfinite(v.detach()).all() for v in terms.values()])
        if not bool(finite.all()):  # one device-to-host copy per step, however many terms
            bad = [k for k, ok in zip(terms, finite.tolist(), strict=True) if not ok]
    trainer = getattr(task, "_trainer", None)
    if trainer is not None and trainer.world_size > 1:
        anywhere = trainer.strategy.reduce_boolean_decision(bool(bad), all=False)
        if anywhere and not bad:
            raise NonFiniteError(f"step {task.global_step}: another process got a non-finite loss")
    if bad:
        values = ", ".join(f"{k}={float(losses[k].detach().float().sum()):g}" for k in bad)
        raise NonFiniteError(f"step {task.global_step}: non-finite loss ({values}); lower the learning rate, "
                             "clip gradients or check the data for NaN/inf")
