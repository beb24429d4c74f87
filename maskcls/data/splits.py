"""Person-level splits: a holdout and stratified k-fold, never splitting one person's images.

Both work on the table of people (one row per ``person_id``), stratified on gender x age group,
so a person's seven shots (and the two folders that share an id in the real data) always land
on the same side. Splitting people with sklearn's ``StratifiedKFold`` is exactly a stratified
*group* k-fold over images with the person as the group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from maskcls import labels
from maskcls.config import Open, check_value
from maskcls.errors import ConfigError


def people_table(catalog: pd.DataFrame) -> pd.DataFrame:
    """One row per person id with its stratum (gender x age group, 0..5), sorted by id so the
    split does not depend on scan order."""
    people = catalog.drop_duplicates("person_id").sort_values("person_id")
    return pd.DataFrame({
        "person_id": people["person_id"].to_numpy(),
        "stratum": labels.person_group(labels.gender_code(people["gender"]),
                                       people["age_group"].to_numpy()),
    })


def _stratify_or_none(strata: np.ndarray, n_splits: int) -> np.ndarray | None:
    # sklearn refuses strata smaller than the number of splits (tiny test trees); fall back to a
    # plain shuffle there rather than failing. The real data's smallest stratum has 83 people.
    counts = np.bincount(strata)
    return strata if counts[counts > 0].min() >= n_splits else None


def check_split_args(val_ratio: float, n_folds: int | None, fold: int) -> None:
    """The split settings' own checks, usable before any data is read."""
    if n_folds is not None:
        if isinstance(n_folds, int) and n_folds < 2:
            raise ConfigError(f"data.n_folds must be at least 2 for k-fold (null: a holdout of "
                              f"data.val_ratio), got {n_folds}")
        check_value("data.n_folds", n_folds, "int", 2, optional=True)
        check_value("data.fold", fold, "int", 0, n_folds - 1)
    else:
        check_value("data.val_ratio", val_ratio, "number", Open(0), Open(1))


def holdout_split(catalog: pd.DataFrame, val_ratio: float, seed: int) -> tuple[set, set]:
    """(train person ids, val person ids); ``round(val_ratio * people)`` people go to val."""
    check_split_args(val_ratio, None, 0)
    people = people_table(catalog)
    n_val = int(round(val_ratio * len(people)))
    if not 0 < n_val < len(people):
        raise ConfigError(f"data.val_ratio={val_ratio} leaves no people on one side of the split "
                         f"({len(people)} people in all); use a ratio nearer 0.2")
    strata = _stratify_or_none(people["stratum"].to_numpy(), 2)
    if strata is not None and min(n_val, len(people) - n_val) < len(np.unique(strata)):
        strata = None  # sklearn wants a person of every stratum on both sides
    train, val = train_test_split(people["person_id"].to_numpy(), test_size=n_val,
                                  random_state=seed, stratify=strata)
    return set(train), set(val)


def kfold_split(catalog: pd.DataFrame, n_folds: int, fold: int, seed: int) -> tuple[set, set]:
    """(train person ids, val person ids) of fold ``fold`` out of ``n_folds``."""
    if n_folds < 2:
        raise ConfigError(f"data.n_folds must be at least 2 for k-fold, got {n_folds}")
    check_split_args(0.5, n_folds, fold)
    people = people_table(catalog)
    if len(people) < n_folds:
        raise ConfigError(f"{n_folds} folds need at least {n_folds} people, found {len(people)}")
    ids = people["person_id"].to_numpy()
    strata = _stratify_or_none(people["stratum"].to_numpy(), n_folds)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(ids, strata if strata is not None else np.zeros(len(ids))))
    train_idx, val_idx = splits[fold]
    return set(ids[train_idx]), set(ids[val_idx])


@dataclass(frozen=True)
class Split:
    """Who validates: ``val_ratio`` of the people (``n_folds`` unset), or fold ``fold`` of a
    person-level stratified ``n_folds``-fold. ``seed`` is the split's own seed, independent
    of the training seed, so several seeds can be compared on one split."""

    val_ratio: float = 0.2
    n_folds: int | None = None
    fold: int = 0
    seed: int = 42

    def __post_init__(self) -> None:
        check_split_args(self.val_ratio, self.n_folds, self.fold)

    def people(self, catalog: pd.DataFrame) -> tuple[set, set]:
        """(train person ids, validation person ids)."""
        if self.n_folds:
            return kfold_split(catalog, self.n_folds, self.fold, self.seed)
        return holdout_split(catalog, self.val_ratio, self.seed)

    def identity(self) -> dict[str, Any]:
        """What a checkpoint records of its split; resuming or carrying weights into another
        split is refused on it."""
        return {"n_folds": self.n_folds, "fold": self.fold if self.n_folds else None,
                "val_ratio": None if self.n_folds else self.val_ratio,
                "split_seed": self.seed}
