"""Which training images an epoch sees: undersample masked shots, oversample rare classes.

Every person has five ``mask*`` shots but one ``incorrect_mask`` and one ``normal``, so the mask
task is 5:1:1. Keeping ``keep_masked`` of the five per person gives 3:1:1 (3) or 1:1:1 (1).
Rare classes (men over 60 without a mask: 83 of 18,900 real images) can then be oversampled
with torch's ``WeightedRandomSampler`` (class-balanced draws) or by repeating their images.

The sampler draws from a generator seeded by ``seed`` and the epoch, so every DDP rank builds
the same list and Lightning's distributed wrapper splits it between ranks without repeats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Sampler, WeightedRandomSampler

from maskcls import labels
from maskcls.config import check_value
from maskcls.errors import ConfigError

OVERSAMPLE_MODES = ("none", "weighted", "repeat")


def check_sampling_args(keep_masked: int, oversample: str) -> None:
    check_value("data.undersample.keep_masked", keep_masked, "int", 1, labels.MASKED_SHOTS)
    if oversample not in OVERSAMPLE_MODES:
        raise ConfigError(f"data.oversample must be one of {OVERSAMPLE_MODES}, got {oversample!r}"
                          + ("; SMOTE images are data.smote=true" if oversample == "smote" else ""))


@dataclass(frozen=True)
class Sampling:
    """How one training epoch draws its rows: ``keep_masked`` of a person's five masked shots
    (anew each epoch or once), then ``oversample`` (see ``TrainSampler``) and ``smote``
    images of the rare classes added to the rows. ``seed`` fixes the draws; ``draw_seed``
    makes it from the split's seed and the run's."""

    keep_masked: int = 5
    resample_each_epoch: bool = True
    oversample: str = "none"
    smote: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_sampling_args(self.keep_masked, self.oversample)

    @staticmethod
    def draw_seed(split_seed: int, run_seed: int) -> int:
        """One seed from both: runs of two seeds on one split draw different epochs."""
        return split_seed * 100_003 + run_seed

    def sampler(self, catalog: pd.DataFrame, **hooks: Any) -> TrainSampler:
        """The epoch sampler over ``catalog``'s rows (``hooks``: ``TrainSampler``'s
        ``epoch_fn`` and ``on_epoch_start``)."""
        return TrainSampler(catalog, keep_masked=self.keep_masked,
                            resample_each_epoch=self.resample_each_epoch,
                            oversample=self.oversample, seed=self.seed, **hooks)


class TrainSampler(Sampler[int]):
    """Yields catalog row indices for one training epoch.

    Args:
        catalog: the training rows (index = row position in the dataset), with columns
            ``person_id``, ``folder``, ``mask``, ``stem``, ``label``.
        keep_masked: masked shots kept per person and epoch (1..5; 5 keeps all).
        resample_each_epoch: draw the kept shots anew every epoch (True) or once per seed.
        oversample: ``none``, ``weighted`` (class-balanced draws with replacement, same epoch
            length) or ``repeat`` (images of class c repeated ``round(median / count_c)`` times,
            at most ``max_repeat``).
        epoch_fn: where the current epoch comes from (the trainer's, so that a resumed run
            draws the right epoch even before Lightning calls ``set_epoch``).
        on_epoch_start: called with the epoch when an epoch's indices are drawn (reseeds the
            augmentation RNGs at a point that is the same for fresh and resumed runs).
    """

    def __init__(self, catalog: pd.DataFrame, keep_masked: int = 5,
                 resample_each_epoch: bool = True, oversample: str = "none",
                 max_repeat: int = 8, seed: int = 0,
                 epoch_fn: Callable[[], int] | None = None,
                 on_epoch_start: Callable[[int], None] | None = None) -> None:
        check_sampling_args(keep_masked, oversample)
        self.rows = np.asarray(catalog.index, dtype=np.int64)
        self.labels = catalog["label"].to_numpy()
        self.masked = (catalog["mask"] == labels.WEAR).to_numpy()
        # Group key per row: the person's folder (one folder = one photo session).
        self.group = pd.factorize(catalog["folder"])[0]
        self.keep_masked = keep_masked
        self.resample_each_epoch = resample_each_epoch
        self.oversample = oversample
        self.max_repeat = max_repeat
        self.seed = seed
        self.epoch = 0
        self._explicit_epoch = False
        self.epoch_fn, self.on_epoch_start = epoch_fn, on_epoch_start

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch (resumed runs included)."""
        self.epoch = epoch
        self._explicit_epoch = True

    def _kept(self, rng: np.random.Generator) -> np.ndarray:
        """Positions (into self.rows) of the shots kept this epoch: every unmasked shot plus
        ``keep_masked`` masked shots per person, chosen by a random key."""
        if self.keep_masked >= labels.MASKED_SHOTS:
            return np.arange(len(self.rows))
        keep = ~self.masked
        m = np.flatnonzero(self.masked)
        key = rng.random(len(m))
        rank = pd.Series(key).groupby(self.group[m]).rank(method="first").to_numpy()
        keep[m[rank <= self.keep_masked]] = True
        return np.flatnonzero(keep)

    def _repeat_factors(self, kept: np.ndarray) -> np.ndarray:
        counts = np.bincount(self.labels[kept])
        median = float(np.median(counts[counts > 0]))
        return np.array([min(self.max_repeat, max(1, round(median / c))) if c else 0
                         for c in counts])

    def indices(self) -> np.ndarray:
        """The row indices of the current epoch, in order."""
        epoch_rng = np.random.default_rng([self.seed, self.epoch])
        select_rng = epoch_rng if self.resample_each_epoch else np.random.default_rng(self.seed)
        kept = self._kept(select_rng)
        if self.oversample == "weighted":
            counts = np.bincount(self.labels[kept], minlength=1).astype(np.float64)
            weights = 1.0 / counts[self.labels[kept]]
            g = torch.Generator().manual_seed(int(epoch_rng.integers(2**62)))
            draw = WeightedRandomSampler(torch.as_tensor(weights), num_samples=len(kept),
                                         replacement=True, generator=g)
            return self.rows[kept[np.fromiter(draw, dtype=np.int64, count=len(kept))]]
        if self.oversample == "repeat":
            kept = np.repeat(kept, self._repeat_factors(kept)[self.labels[kept]])
        return self.rows[kept[epoch_rng.permutation(len(kept))]]

    def __iter__(self) -> Iterator[int]:
        if self.epoch_fn is not None:
            self.epoch, self._explicit_epoch = self.epoch_fn(), True
        if self.on_epoch_start is not None:
            self.on_epoch_start(self.epoch)
        idx = self.indices()
        if not self._explicit_epoch:
            self.epoch += 1  # no set_epoch caller (e.g. inside a DDP wrapper): advance ourselves
        return iter(idx.tolist())

    def class_counts(self, n_classes: int = labels.NUM_CLASSES) -> np.ndarray:
        """Images of each class in one epoch (expected, for ``weighted`` draws): what the loss
        sees, so what a class-weighted or logit-adjusted loss must balance. Undersampling
        keeps the same classes every epoch (a person's masked shots share one class)."""
        kept = self._kept(np.random.default_rng(self.seed))
        counts = np.bincount(self.labels[kept], minlength=n_classes).astype(np.float64)
        if self.oversample == "repeat":
            factors = self._repeat_factors(kept)
            counts[:len(factors)] *= factors
        elif self.oversample == "weighted":
            counts = np.where(counts > 0, len(kept) / np.count_nonzero(counts), 0.0)
        return counts

    def __len__(self) -> int:
        # Per-class counts of the kept shots do not change between epochs, so neither does this.
        kept = self._kept(np.random.default_rng(self.seed))
        if self.oversample == "repeat":
            return int(self._repeat_factors(kept)[self.labels[kept]].sum())
        return len(kept)
