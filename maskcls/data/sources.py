"""Where the training rows come from: the tree's ``train/`` (scanned and fingerprinted), the
label fixes of ``data.corrections``, the split into people, then eval images pseudo-labelled
with enough confidence (training side only), every image decoded once if ``verify``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from maskcls.data import catalog as cat
from maskcls.data.corrections import apply_corrections
from maskcls.data.dataset import check_decodable
from maskcls.data.fingerprint import train_fingerprint
from maskcls.data.parallel import decode_workers
from maskcls.data.pseudo import check_pseudo_args, pseudo_rows
from maskcls.data.splits import Split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingRows:
    """The scanned (and corrected, extended) catalog and which of its rows train and
    validate; ``fingerprint`` is the tree's as scanned (before any fix)."""

    catalog: pd.DataFrame
    train_rows: np.ndarray
    val_rows: np.ndarray
    fingerprint: dict[str, Any]


@dataclass(frozen=True)
class Sources:
    """``data.corrections`` (``person_id,field,value``), ``data.pseudo_labels`` (a
    ``predict.py save_probs=true`` table of this root's eval set) with its threshold, and
    ``data.verify``."""

    corrections: str | None = None
    pseudo_labels: str | None = None
    pseudo_threshold: float = 0.9
    verify: bool = False

    def check(self, root: Path) -> None:
        """Before any data work: the pseudo-label file and threshold."""
        check_pseudo_args(self.pseudo_labels, self.pseudo_threshold, root)

    def rows(self, root: Path, age_bounds: Sequence[int], split: Split,
             num_workers: int) -> TrainingRows:
        df = cat.scan_train(root, age_bounds)
        fingerprint = train_fingerprint(root, df)
        if self.corrections:
            df = apply_corrections(df, self.corrections, age_bounds)
        train_ids, val_ids = split.people(df)
        if self.pseudo_labels:  # after the split: their own "people", in training only
            pseudo = pseudo_rows(self.pseudo_labels, root, self.pseudo_threshold)
            log.info("pseudo-labels: %d eval images reach p >= %s and join training",
                     len(pseudo), self.pseudo_threshold)
            df = pd.concat([df, pseudo], ignore_index=True)
            train_ids = set(train_ids) | set(pseudo["person_id"])
        df = df.reset_index(drop=True)
        if self.verify:
            paths = df["path"].tolist()
            check_decodable(paths, decode_workers(num_workers, len(paths)))
            log.info("verified: all %d images decode", len(paths))
        people = df["person_id"]
        return TrainingRows(df, np.flatnonzero(people.isin(train_ids).to_numpy()),
                            np.flatnonzero(people.isin(val_ids).to_numpy()), fingerprint)
