"""Label errors injected on purpose, with the truth recorded, so the label-issue finder
(``python -m maskcls.label_issues``) can be measured: the kinds the real data is known to hold.

* ``gender``: the folder names the other gender;
* ``age``: the folder's age lies in a neighbouring age group;
* ``mask``: the person's ``incorrect_mask`` and ``normal`` shots are swapped (each file shows
  the other shot).

The photos always show the true person; only the names lie. ``<root>/label_errors.csv`` lists
every changed person: ``person_id, folder, field, true, given``. The choice uses its own random
stream, so a tree without errors keeps its exact bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from maskcls import labels
from maskcls.synth.population import Person

FILE = "label_errors.csv"
KINDS = ("gender", "age", "mask")
SWAPPED = ("incorrect_mask", "normal")


def choose(people: Sequence[Person], share: float, seed: int) -> dict[str, str]:
    """``{person_id: kind}`` for ``round(share * len(people))`` people, the kinds in turn.
    People whose id is filed in two folders are never chosen (a fix by id would hit both)."""
    if share <= 0:
        return {}
    counts = Counter(p.person_id for p in people)
    candidates = [p.person_id for p in people if counts[p.person_id] == 1]
    rng = np.random.default_rng([seed, 7919])
    n = min(len(candidates), round(share * len(people)))
    chosen = rng.choice(candidates, size=n, replace=False)
    return {str(pid): KINDS[i % len(KINDS)] for i, pid in enumerate(chosen)}


def wrong_age(age: int) -> int:
    """An age in a neighbouring group: under 30 -> 30s-40s, 30-59 -> under 30 or 60 (the
    nearer), 60 -> 50s."""
    group = int(labels.age_group(age))
    if group == 0:
        return min(age + 20, 49)
    if group == 2:
        return 55
    return 25 if age < 45 else 60


def given(person: Person, kind: str | None) -> tuple[str, int, tuple[str, ...]]:
    """(gender, age, file stems in ``labels.IMAGE_STEMS`` order) the tree records."""
    gender, age, stems = person.gender, person.age, labels.IMAGE_STEMS
    if kind == "gender":
        gender = labels.GENDER_NAMES[1 - labels.gender_code(gender)]
    elif kind == "age":
        age = wrong_age(age)
    elif kind == "mask":
        swap = {SWAPPED[0]: SWAPPED[1], SWAPPED[1]: SWAPPED[0]}
        stems = tuple(swap.get(s, s) for s in stems)
    return gender, age, stems


def write_truth(root: Path, people: Sequence[Person], wrong: dict[str, str]) -> Path:
    rows = []
    for p in people:
        kind = wrong.get(p.person_id)
        if kind is None:
            continue
        gender, age, _ = given(p, kind)
        folder = f"{p.person_id}_{gender}_{p.race}_{age}"
        true, shown = {"gender": (p.gender, gender), "age": (p.age, age),
                       "mask": ("", "+".join(SWAPPED))}[kind]
        rows.append((p.person_id, folder, kind, true, shown))
    path = root / FILE
    pd.DataFrame(rows, columns=["person_id", "folder", "field", "true", "given"]).to_csv(
        path, index=False)
    return path
