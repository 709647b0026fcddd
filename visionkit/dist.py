"""Loss normalisers that do not depend on how a batch is split across DDP processes.

A loss normalised by a count taken in one process (positives, weights) changes when the same global batch is
split over more processes. :func:`global_normalizer` sums the count over all processes and scales it by the
inverse of the world size, so that after DDP averages the gradients the result equals one process seeing the
whole batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def world_size() -> int:
    """Number of processes in the default group (1 without ``torch.distributed``)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def global_normalizer(count: Tensor | float, min_value: float = 1.0) -> Tensor:
    """``max(sum of count over processes, min_value) / world_size`` as a detached float tensor.

    Divide a per-process sum by it: DDP's gradient average over ``world_size`` processes then gives the sum over
    the global batch divided by the global count.

    Args:
        count: this process's count, a scalar tensor on the model's device (or a number without DDP).
        min_value: lower bound of the global count (avoids division by zero).
    """
    t = torch.as_tensor(count, dtype=torch.float64).detach().clone()  # stays on the count's device (NCCL: GPU)
    n = world_size()
    if n > 1:
        dist.all_reduce(t)
    return (t.clamp(min=min_value) / n).float()
