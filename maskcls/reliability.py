"""Pieces that make a run survive interruption and repeat itself exactly.

* ``AtomicCheckpointIO``: a checkpoint is written to a temporary file and renamed into place,
  so a kill during the write never leaves a corrupt ``last.ckpt`` as the only copy.
* ``seed_rngs``: the training sampler reseeds every RNG from (seed, epoch, rank) the moment an
  epoch's first batch is drawn, so a run resumed from ``last.ckpt`` draws the same augmentations
  and dropout masks as one that never stopped (Lightning does not checkpoint RNG states, and
  it fetches the first batch before any epoch-start hook runs).
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning_fabric.utilities.cloud_io import get_filesystem
from pytorch_lightning.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes are all-or-nothing (temp file + rename)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        if get_filesystem(path).protocol not in ("file", ("file", "local")):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return None


def seed_rngs(seed: int, epoch: int, rank: int = 0) -> None:
    """Seed python, numpy and torch (all devices) from (seed, epoch, rank)."""
    value = (seed * 1_000_003 + epoch * 1_009 + rank) % 2**32
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)
