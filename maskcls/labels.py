"""The one place that knows the 18-class encoding.

``class = 6 * mask + 3 * gender + age_group``

* mask: wear=0 (``mask1``..``mask5``), incorrect=1 (``incorrect_mask``), not worn=2 (``normal``)
* gender: male=0, female=1
* age group: ``< bounds[0]`` = 0, ``bounds[0] <= age < bounds[1]`` = 1, ``>= bounds[1]`` = 2

Everything else in maskcls goes through these functions; no other module does arithmetic on
class ids. All functions accept scalars, numpy arrays and torch tensors.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from maskcls.errors import ConfigError

NUM_CLASSES = 18
MASK_NAMES = ("wear", "incorrect", "not_worn")
GENDER_NAMES = ("male", "female")
AGE_GROUP_NAMES = ("<30", "30-59", ">=60")
DEFAULT_AGE_BOUNDS = (30, 60)

# File stem -> mask code. The five masked shots share code 0.
MASK_BY_STEM = {
    "mask1": 0,
    "mask2": 0,
    "mask3": 0,
    "mask4": 0,
    "mask5": 0,
    "incorrect_mask": 1,
    "normal": 2,
}
IMAGE_STEMS = tuple(MASK_BY_STEM)
SHOTS_PER_PERSON = len(IMAGE_STEMS)
WEAR, INCORRECT, NOT_WORN = range(len(MASK_NAMES))
MASKED_SHOTS = sum(code == WEAR for code in MASK_BY_STEM.values())  # mask1..mask5
GENDER_CODES = {name: code for code, name in enumerate(GENDER_NAMES)}
FEMALE = GENDER_CODES["female"]

TASKS = {"mask": MASK_NAMES, "gender": GENDER_NAMES, "age": AGE_GROUP_NAMES}


def age_group(age: Any, bounds: Sequence[int] = DEFAULT_AGE_BOUNDS) -> Any:
    """Age in years -> group 0, 1 or 2. ``age >= bounds[1]`` is the old group (the real 60+
    people are all recorded as exactly 60, so ``>`` would empty that group)."""
    lo, hi = check_age_bounds(bounds)
    if hasattr(age, "new_tensor"):  # torch tensor: keep it on its device
        return (age >= lo).long() + (age >= hi).long()
    groups = np.digitize(np.asarray(age), [lo, hi], right=False)
    return groups if groups.ndim else int(groups)


def check_age_bounds(bounds: Sequence[int]) -> tuple[int, int]:
    """``data.age_bounds``: two increasing whole ages."""
    ok = (isinstance(bounds, Sequence) and not isinstance(bounds, str) and len(bounds) == 2
          and all(isinstance(b, numbers.Integral) and not isinstance(b, bool) and 0 < b < 130
              for b in bounds)
          and bounds[0] < bounds[1])
    if not ok:
        shown = list(bounds) if isinstance(bounds, Sequence) and not isinstance(bounds, str) \
            else bounds
        raise ConfigError(f"data.age_bounds must be two increasing whole ages such as [30, 60], "
                          f"got {shown!r}")
    return int(bounds[0]), int(bounds[1])


def gender_code(gender: Any) -> Any:
    """'male'/'female' (case-insensitive) -> 0/1."""
    if isinstance(gender, str):
        try:
            return GENDER_CODES[gender.lower()]
        except KeyError:
            raise ValueError(f"unknown gender {gender!r}: expected one of {GENDER_NAMES}") from None
    return np.array([gender_code(g) for g in gender], dtype=np.int64)


def encode(mask: Any, gender: Any, age_grp: Any) -> Any:
    """(mask, gender, age_group) codes -> class id in 0..17."""
    return 6 * mask + 3 * gender + age_grp


def person_group(gender: Any, age_grp: Any) -> Any:
    """(gender, age_group) codes -> a person's group in 0..5: the 18 classes without the mask,
    which all seven shots of a person share (splits stratify on it)."""
    return encode(WEAR, gender, age_grp)


def decode(label: Any) -> tuple[Any, Any, Any]:
    """Class id(s) -> (mask, gender, age_group) codes."""
    return label // 6, (label // 3) % 2, label % 3


def class_name(label: int) -> str:
    """Readable name of one class id, e.g. ``'wear/female/30-59'``."""
    m, g, a = decode(int(label))
    return f"{MASK_NAMES[m]}/{GENDER_NAMES[g]}/{AGE_GROUP_NAMES[a]}"


CLASS_NAMES = tuple(class_name(i) for i in range(NUM_CLASSES))


TASK_SHAPE = tuple(len(names) for names in TASKS.values())  # (3, 2, 3): class = 6m + 3g + a


def task_marginals(probs: Any) -> tuple[Any, Any, Any]:
    """(..., 18) class probabilities (or counts) -> their (mask, gender, age) marginals."""
    joint = probs.reshape(*probs.shape[:-1], *TASK_SHAPE)
    n = joint.ndim
    return joint.sum((n - 2, n - 1)), joint.sum((n - 3, n - 1)), joint.sum((n - 3, n - 2))


def soft_age_targets(label: Any, age: Any, bounds: Sequence[int], sigma: float) -> Any:
    """Class ids (N,) and recorded ages in years (N,) -> (N, 18) training targets whose age
    part spreads each person over the age groups: a normal of std ``sigma`` years around the
    middle of the recorded year, its mass in each group (a 59-year-old with ``sigma=2``:
    0.60 30-59, 0.40 60+). Mask and gender stay as given. The oldest group stays whole, as
    its ages are a floor (the real 60+ are all recorded as 60), and so does a row with no
    recorded age (NaN: SMOTE, pseudo-labels). Torch tensors only (a training batch)."""
    import torch

    lo, hi = check_age_bounds(bounds)
    mask, gender, group = decode(label)
    centre = age.float() + 0.5
    below_lo, below_hi = (torch.special.ndtr((b - centre) / sigma) for b in (lo, hi))
    spread = torch.stack([below_lo, below_hi - below_lo, 1 - below_hi], -1)
    whole = torch.nn.functional.one_hot(group, len(AGE_GROUP_NAMES)).to(spread.dtype)
    keep = (group == len(AGE_GROUP_NAMES) - 1) | age.isnan()
    age_part = torch.where(keep[:, None], whole, spread)
    rows = age_part.new_zeros(len(label), NUM_CLASSES)
    first = encode(mask, gender, 0)  # the person's three classes: first, +1, +2
    rows.scatter_(1, first[:, None] + torch.arange(3, device=rows.device), age_part)
    return rows


def joint_log_probs(mask: Any, gender: Any, age: Any) -> Any:
    """Per-task log-probabilities (..., 3), (..., 2), (..., 3) -> (..., 18) log-probabilities
    of the classes, the tasks taken as independent: softmax of the result is the product of the
    three softmaxes, and its arg-max decodes to the three arg-maxes."""
    joint = mask[..., :, None, None] + gender[..., None, :, None] + age[..., None, None, :]
    return joint.reshape(*joint.shape[:-3], NUM_CLASSES)
