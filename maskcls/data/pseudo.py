"""Pseudo-labelling: confident eval images join the training set with their predicted class.

Round one predicts the eval set with ``save_probs=true``; round two trains with
``data.pseudo_labels=<that _probs.csv>``. Only images whose top probability reaches
``data.pseudo_threshold`` are used. They are added to the training rows after the split, as
people of their own, so they never reach validation, and validation scores stay comparable
with round one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from maskcls import labels
from maskcls.config import Open, check_value
from maskcls.data import catalog as cat
from maskcls.errors import ConfigError, DataLayoutError

PROB_COLUMNS = [f"prob_{c}" for c in range(labels.NUM_CLASSES)]
PERSON_PREFIX = "pseudo:"  # person ids of pseudo-labelled images: never a real id


def check_pseudo_args(path: str | None, threshold: float, root: str | os.PathLike) -> None:
    """Before any training: the threshold is a probability and the file a valid probability
    table of this root's eval set (``read_probabilities``)."""
    check_value("data.pseudo_threshold", threshold, "number", Open(0), 1)
    if path is None:
        return
    if not Path(os.path.expanduser(str(path))).is_file():
        raise ConfigError(f"data.pseudo_labels={path}: no such file. Write it with "
                          "`python predict.py ckpt=<run> save_probs=true` (the *_probs.csv)")
    if (Path(root) / "eval" / "info.csv").is_file():  # else the data-root check speaks first
        read_probabilities(path, root)


def read_probabilities(path: str | os.PathLike, root: str | os.PathLike
                       ) -> tuple[pd.DataFrame, np.ndarray]:
    """(this root's eval table indexed by ImageID, the file's rows) after checking every row:
    a known, unique ImageID and 18 probabilities in [0, 1] that sum to 1 (within 1e-3)."""
    path = Path(os.path.expanduser(str(path)))
    where = f"data.pseudo_labels={path}"
    try:
        probs = pd.read_csv(path, dtype={"ImageID": str}, keep_default_na=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataLayoutError(f"{where} cannot be read as CSV ({e})") from None
    missing = [c for c in ["ImageID", *PROB_COLUMNS] if c not in probs.columns]
    if missing:
        raise DataLayoutError(f"{where} lacks column(s) {', '.join(missing[:4])}; give the "
                              "*_probs.csv that `predict.py save_probs=true` writes")
    ids = probs["ImageID"].str.strip()
    eval_df = cat.scan_eval(root).set_index("ImageID")
    for bad, what in ((ids == "", "has no ImageID"),
                      (ids.duplicated(keep=False), "repeats an ImageID"),
                      (~ids.isin(eval_df.index), f"names an image not in "
                                                 f"{Path(root) / 'eval' / 'info.csv'}")):
        if bad.any():
            line = int(bad.to_numpy().argmax()) + 2
            raise DataLayoutError(f"{where}: {int(bad.sum())} row(s) {what} (first: line {line},"
                                  f" {ids[bad].iloc[0]!r}); were they predicted on another "
                                  "data root?")
    p = probs[PROB_COLUMNS].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(p).all(1) | (p < 0).any(1) | (p > 1).any(1) | \
        (np.abs(p.sum(1) - 1) > 1e-3)
    if bad.any():
        line = int(bad.argmax()) + 2
        raise DataLayoutError(f"{where}: {int(bad.sum())} row(s) are not 18 probabilities in "
                              f"[0, 1] summing to 1 (first: line {line}, ImageID "
                              f"{ids.iloc[line - 2]!r})")
    return eval_df.loc[ids], p


def pseudo_rows(path: str | os.PathLike, root: str | os.PathLike,
                threshold: float) -> pd.DataFrame:
    """Catalog rows (the training catalog's columns) of the confident eval images."""
    images, p = read_probabilities(path, root)
    confident = p.max(1) >= threshold
    chosen = images.index.to_numpy()[confident]
    return cat.extra_rows([PERSON_PREFIX + i for i in chosen],
                          images["path"].to_numpy()[confident], p[confident].argmax(1), "pseudo")
