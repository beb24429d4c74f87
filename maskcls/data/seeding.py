"""Per-epoch reseeding, so a run resumed from ``last.ckpt`` repeats itself exactly.

The training sampler reseeds every RNG from (seed, epoch, rank) the moment an epoch's first
batch is drawn, so a resumed run draws the same augmentations and dropout masks as one that
never stopped (Lightning does not checkpoint RNG states, and it fetches the first batch before
any epoch-start hook runs).
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_rngs(seed: int, epoch: int, rank: int = 0) -> None:
    """Seed python, numpy and torch (all devices) from (seed, epoch, rank)."""
    value = (seed * 1_000_003 + epoch * 1_009 + rank) % 2**32
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)
