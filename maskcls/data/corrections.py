"""Label fixes for a data tree, as data: ``data.corrections=fixes.csv``.

A row is ``person_id,field,value``: ``person_id`` the folder id (``000123`` or ``123``;
``001498-1`` for suffixed ids), and

* ``gender``: ``male`` or ``female``, the person's gender;
* ``age``: a whole number of years, the person's age;
* ``swap``: two shot names joined by ``+`` (e.g. ``incorrect_mask+normal``): the two files
  show each other's shot, so each gets the other's mask label.

Ids not in the catalog are reported with a warning; a row repeated (``19`` and ``000019`` are
one person) applies once, with a warning; two different values for one person and field are an
error. ``python -m maskcls.label_issues`` writes this format.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from maskcls import labels
from maskcls.data.catalog import ID_RE, MAX_AGE, _age, _normalise_id, _read_table, add_labels
from maskcls.errors import DataLayoutError

CORRECTABLE_FIELDS = ("gender", "age", "swap")


def _shot_pair(value: str, csv_path: Path, person: str) -> str:
    """``a+b``, two different shot names, in a canonical order."""
    pair = sorted(v.strip() for v in value.split("+"))
    if len(pair) != 2 or pair[0] == pair[1] or not set(pair) <= set(labels.IMAGE_STEMS):
        shots = ", ".join(labels.IMAGE_STEMS)
        raise DataLayoutError(f"{csv_path}: swap {value!r} for person {person} is not two "
                              f"different shots joined by + (shots: {shots}); e.g. "
                              "incorrect_mask+normal")
    return "+".join(pair)


def apply_corrections(catalog: pd.DataFrame, csv_path: str | os.PathLike,
                      age_bounds: Sequence[int] = labels.DEFAULT_AGE_BOUNDS) -> pd.DataFrame:
    """Apply label fixes from a CSV with columns ``person_id,field,value`` and relabel.

    Rows as in the module's docstring (``gender``, ``age``, ``swap``)."""
    csv_path = Path(csv_path)
    if not csv_path.exists():
        raise DataLayoutError(f"data.corrections: {csv_path} does not exist")
    fixes = _read_table(csv_path, "data.corrections", ["person_id", "field", "value"])
    df = catalog.copy()
    known = df["person_id"].map(_normalise_id)
    unknown, repeated = [], []
    seen: dict[tuple[str, str], str] = {}
    for row in fixes.itertuples(index=False):
        field, value = str(row.field).strip().lower(), str(row.value).strip()
        if field not in CORRECTABLE_FIELDS:
            raise DataLayoutError(f"{csv_path}: field {row.field!r} for person {row.person_id} "
                                  f"is not one of {CORRECTABLE_FIELDS}")
        if field == "gender":
            value = value.lower()
            if value not in labels.GENDER_CODES:
                raise DataLayoutError(f"{csv_path}: gender {row.value!r} for person "
                                      f"{row.person_id} is not one of {labels.GENDER_NAMES}")
        elif field == "age" and _age(value) is None:
            raise DataLayoutError(f"{csv_path}: age {row.value!r} for person {row.person_id} is "
                                  f"not a whole number of years in 0..{MAX_AGE}")
        elif field == "swap":
            value = _shot_pair(value, csv_path, row.person_id)
        if not ID_RE.match(str(row.person_id).strip()):
            raise DataLayoutError(f"{csv_path}: person_id {row.person_id!r} is not a plain "
                                  "decimal id such as 000123 or 001498-1")
        key = (_normalise_id(row.person_id), field)
        if key in seen:  # a repeated swap would swap the shots back: each fix applies once
            if seen[key] != value:
                raise DataLayoutError(f"{csv_path}: person {row.person_id} has two {field} "
                                      f"fixes ({seen[key]!r} and {value!r}); keep one")
            repeated.append(f"{row.person_id} {field}")
            continue
        seen[key] = value
        hit = known == _normalise_id(row.person_id)
        if not hit.any():
            unknown.append(str(row.person_id))
            continue
        if field == "swap":
            first, second = value.split("+")
            stems = df.loc[hit, "stem"]
            df.loc[hit, "stem"] = stems.replace({first: second, second: first})
        else:
            df.loc[hit, field] = int(value) if field == "age" else value
    if repeated:
        warnings.warn(f"{csv_path}: {len(repeated)} correction(s) repeat an earlier row (the same "
                      f"person, after leading zeros, and fix) and were applied once: "
                      f"{', '.join(repeated[:10])}", stacklevel=2)
    if unknown:
        warnings.warn(f"{csv_path}: {len(unknown)} correction(s) name ids that are not in the data "
                      f"and were skipped: {', '.join(unknown[:10])}", stacklevel=2)
    return add_labels(df, age_bounds)
