"""Deterministic per-step seeds, so that resumed runs repeat the random draws of uninterrupted ones."""

import os


def step_seed(step: int, rank: int = 0, salt: int = 0) -> int:
    """Seed derived from the run's global seed, the optimiser step, the process rank and a salt."""
    base = int(os.environ.get("PL_GLOBAL_SEED", 0))
    return (base * 1_000_003 + step * 7919 + rank * 104_729 + salt * 15_485_863) % (2**63 - 1)
