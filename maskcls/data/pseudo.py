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
from maskcls.config_checks import check_value
from maskcls.data import catalog as cat
from maskcls.errors import ConfigError, DataLayoutError

PROB_COLUMNS = [f"prob_{c}" for c in range(labels.NUM_CLASSES)]
PERSON_PREFIX = "pseudo:"  # person ids of pseudo-labelled images: never a real id


def check_pseudo_args(path: str | None, threshold: float) -> None:
    check_value("data.pseudo_threshold", threshold, "number", ("open", 0), 1)
    if path is not None and not Path(os.path.expanduser(str(path))).is_file():
        raise ConfigError(f"data.pseudo_labels={path}: no such file. Write it with "
                          "`python predict.py ckpt=<run> save_probs=true` (the *_probs.csv)")


def pseudo_rows(path: str | os.PathLike, root: str | os.PathLike,
                threshold: float) -> pd.DataFrame:
    """Catalog rows (the training catalog's columns) of the confident eval images."""
    path = Path(os.path.expanduser(str(path)))
    try:
        probs = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError) as e:
        raise DataLayoutError(f"data.pseudo_labels={path} cannot be read as CSV ({e})") from None
    missing = [c for c in ["ImageID", *PROB_COLUMNS] if c not in probs.columns]
    if missing:
        raise DataLayoutError(f"data.pseudo_labels={path} lacks column(s) "
                              f"{', '.join(missing[:4])}; give the *_probs.csv that "
                              "`predict.py save_probs=true` writes")
    eval_df = cat.scan_eval(root)
    unknown = sorted(set(probs["ImageID"]) - set(eval_df["ImageID"]))
    if unknown:
        raise DataLayoutError(f"data.pseudo_labels={path}: {len(unknown)} ImageID(s) are not in "
                              f"{Path(root) / 'eval' / 'info.csv'} (e.g. {unknown[0]}); were "
                              "they predicted on another data root?")
    p = probs[PROB_COLUMNS].to_numpy(dtype=np.float64)
    confident = p.max(1) >= threshold
    chosen = probs.loc[confident, "ImageID"].to_numpy()
    paths = eval_df.set_index("ImageID").loc[chosen, "path"].to_numpy()
    return cat.extra_rows([PERSON_PREFIX + i for i in chosen], paths,
                          p[confident].argmax(1), "pseudo")
