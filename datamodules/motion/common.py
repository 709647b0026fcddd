"""Shared pieces of the motion datamodules: a tensor-backed trajectory dataset."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset


class TrajectoryDataset(Dataset):
    """Fixed-size trajectory windows held in memory.

    Args:
        past: ``(N, A, T_p, D)`` observed positions.
        future: ``(N, A, T_f, D)`` positions to predict.
        mask: ``(N, A)`` bool, True for agents present in the window (default: all).
        extra: further per-sample tensors ``(N, ...)`` added to every item (e.g. ``charges``).
    """

    def __init__(self, past: Tensor, future: Tensor, mask: Tensor | None = None,
                 extra: dict[str, Tensor] | None = None) -> None:
        if past.shape[:2] != future.shape[:2] or past.shape[-1] != future.shape[-1]:
            raise ValueError(f"past {tuple(past.shape)} and future {tuple(future.shape)} disagree")
        self.past = past.float()
        self.future = future.float()
        self.mask = torch.ones(past.shape[:2], dtype=torch.bool) if mask is None else mask.bool()
        self.extra = extra or {}

    def __len__(self) -> int:
        return self.past.shape[0]

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        item = {"past": self.past[i], "future": self.future[i], "mask": self.mask[i]}
        item.update({k: v[i] for k, v in self.extra.items()})
        return item


def pad_agents(windows: list[tuple[Tensor, Tensor]], max_agents: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Stack variable-agent windows ``[(past (A_i, T_p, D), future (A_i, T_f, D)), ...]`` with zero padding.

    Returns:
        past ``(N, A, T_p, D)``, future ``(N, A, T_f, D)``, mask ``(N, A)`` with ``A = max_agents`` or the
        largest ``A_i`` (windows with more agents are truncated to the first ``A``).
    """
    if not windows:
        raise ValueError("no trajectory windows to stack")
    A = max_agents or max(p.shape[0] for p, _ in windows)
    n, (_, tp, d), tf = len(windows), windows[0][0].shape, windows[0][1].shape[1]
    past = torch.zeros(n, A, tp, d)
    future = torch.zeros(n, A, tf, d)
    mask = torch.zeros(n, A, dtype=torch.bool)
    for i, (p, f) in enumerate(windows):  # once per window at set-up, not in a training path
        a = min(A, p.shape[0])
        past[i, :a], future[i, :a], mask[i, :a] = p[:a], f[:a], True
    return past, future, mask
