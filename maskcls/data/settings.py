"""The datamodule's settings that need no data: cache mode and folder, loader workers,
normalisation and oversampling modes, age bounds (checked when the datamodule is built), and
how pixels are loaded."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from maskcls import labels
from maskcls.errors import ConfigError

CACHE_MODES = ("ram", "disk", "none")


def loader_workers(value: int | str, cache: str) -> int:
    """``auto``: with a pixel cache on CPU the loader only indexes memory (augmentation runs
    on the batch, see ``on_after_batch_transfer``), so worker processes would only take cores
    from the model; decoding full images, or feeding a GPU, needs workers."""
    if value != "auto":
        if not isinstance(value, int) or value < 0:
            raise ConfigError(f"data.num_workers must be 'auto' or an integer >= 0, got {value!r}")
        return value
    if cache != "none" and not torch.cuda.is_available():
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def check_modes(cache: str, normalize: Any, smote: bool, age_bounds: Sequence[int]) -> None:
    if cache not in CACHE_MODES:
        raise ConfigError(f"data.cache must be one of {CACHE_MODES}, got {cache!r}")
    if isinstance(normalize, str) and normalize not in ("imagenet", "dataset"):
        raise ConfigError("data.normalize must be 'imagenet', 'dataset' or {mean, std}, "
                          f"got {normalize!r}")
    if smote and cache == "none":
        raise ConfigError("data.smote=true works on the cached pixels; use "
                          "data.cache=ram or data.cache=disk with it")
    labels.check_age_bounds(age_bounds)


def cache_folder(cache: str, cache_dir: str | None, root: Path) -> Path:
    """Where ``cache=disk`` keeps its files (default ``<root>/.maskcls_cache``)."""
    path = Path(cache_dir).expanduser() if cache_dir else root / ".maskcls_cache"
    if cache == "disk" and path.exists() and not path.is_dir():
        raise ConfigError(f"data.cache_dir={path} is a file, not a folder; give a folder for "
                          "the decoded-image cache (it is created if missing)")
    return path


@dataclass(frozen=True)
class Loading:
    """How pixels reach the model: the decoded-image cache (``ram``, ``disk`` under
    ``cache_dir``, or ``none``) and the loaders' batch size, workers and pinned memory."""

    batch_size: int = 64
    num_workers: int = 0
    pin_memory: bool = False
    cache: str = "ram"
    cache_dir: Path | None = None

    @classmethod
    def from_keys(cls, root: Path, batch_size: int, num_workers: int | str,
                  pin_memory: bool | None, cache: str, cache_dir: str | None) -> Loading:
        """``data.*``'s values: ``num_workers=auto`` and ``pin_memory=null`` resolved for
        this machine, the cache folder defaulted and checked."""
        return cls(batch_size, loader_workers(num_workers, cache),
                   torch.cuda.is_available() if pin_memory is None else pin_memory,
                   cache, cache_folder(cache, cache_dir, root))
