"""Decision tuning for macro-F1: offsets added to the log-probabilities before the arg-max.

A model trained on imbalanced data under-predicts the rare classes; macro-F1 weighs every class
the same, so moving the decision towards them pays. The offsets are per task value (3 mask,
2 gender, 3 age: class ``6m + 3g + a`` gets ``mask[m] + gender[g] + age[a]``) rather than one
per class: 8 numbers, fitted on a validation set of a few hundred images, overfit far less than
18, and the imbalance of this task is one of age and gender groups, which they express.

Fitting is coordinate ascent over a grid, starting from zero offsets and taking a step only
when it raises macro-F1 on the fitting set. Fitted and scored on the same few hundred images,
offsets overshoot; so a share of them (0, 1/4, 1/2, 3/4 or all) is kept, chosen by two-fold
cross-validation over the validation people. If the kept share would score below no offsets
on the fitting set, none is kept: calibration never lowers the macro-F1 it is fitted on.
``train.py`` fits them on the validation predictions of ``best.ckpt`` and writes
``calibration.json``; ``predict.py calibrate=true`` applies them. On held-out trees the gain
on the eval set was small and not always positive (README, "Learning quality"); it is an
option, not part of the quick recipe.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.classification import multiclass_f1_score

from maskcls import atomic, labels
from maskcls.errors import CheckpointError

GRID = np.round(np.arange(-3.0, 3.0001, 0.1), 2)  # offsets tried for each value
ROUNDS = 3  # passes over the 8 offsets
SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)  # shares of the fitted offsets tried by cross-validation


def class_offsets(offsets: Mapping[str, Sequence[float]]) -> np.ndarray:
    """Per-task offsets ``{mask: [3], gender: [2], age: [3]}`` -> 18 class offsets."""
    parts = [np.asarray(offsets[t], dtype=np.float64) for t in labels.TASKS]
    return labels.joint_log_probs(*parts)


def apply(probs: np.ndarray, offsets: Mapping[str, Sequence[float]]) -> np.ndarray:
    """(N, 18) probabilities -> the probabilities after the offsets (rows sum to one)."""
    logits = np.log(np.clip(probs, 1e-12, None)) + class_offsets(offsets)
    logits -= logits.max(1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(1, keepdims=True)


def _macro_f1(log_probs: np.ndarray, bias: np.ndarray, truth: torch.Tensor) -> float:
    pred = torch.from_numpy((log_probs + bias).argmax(1))
    return float(multiclass_f1_score(pred, truth, labels.NUM_CLASSES, average="macro"))


def _ascend(log_probs: np.ndarray, truth: torch.Tensor) -> dict[str, np.ndarray]:
    """Coordinate ascent from zero offsets; a step is taken only if macro-F1 rises (or stays
    with a smaller offset)."""
    offsets = {t: np.zeros(len(names)) for t, names in labels.TASKS.items()}
    best = _macro_f1(log_probs, class_offsets(offsets), truth)
    for _ in range(ROUNDS):
        improved = False
        for values in offsets.values():
            for k in range(len(values)):
                keep = values[k]
                for v in GRID:
                    values[k] = v
                    f1 = _macro_f1(log_probs, class_offsets(offsets), truth)
                    if f1 > best + 1e-12 or (f1 >= best - 1e-12 and abs(v) < abs(keep)):
                        improved |= f1 > best + 1e-12
                        best, keep = max(best, f1), v
                values[k] = keep
        if not improved:
            break
    return offsets


def _scaled(offsets: Mapping[str, np.ndarray], s: float) -> dict[str, np.ndarray]:
    return {t: np.asarray(v) * s for t, v in offsets.items()}


def _cross_validated_share(log_probs: np.ndarray, truth: torch.Tensor,
                           groups: np.ndarray) -> float:
    """The share of the offsets to keep: offsets fitted on one half of the people, scaled by
    each of ``SHARES``, scored on the other half (and the other way round)."""
    people = np.unique(groups)
    order = np.random.default_rng(0).permutation(len(people))
    half = np.isin(groups, people[order[: len(people) // 2]])
    totals = np.zeros(len(SHARES))
    for fit_rows in (half, ~half):
        if fit_rows.all() or not fit_rows.any():
            return 1.0
        fitted = _ascend(log_probs[fit_rows], truth[torch.from_numpy(fit_rows)])
        test = torch.from_numpy(~fit_rows)
        for i, share in enumerate(SHARES):
            totals[i] += _macro_f1(log_probs[~fit_rows], class_offsets(_scaled(fitted, share)),
                                   truth[test])
    return float(SHARES[int(np.argmax(totals))])


def fit(probs: np.ndarray, targets: np.ndarray, groups: np.ndarray | None = None
        ) -> dict[str, Any]:
    """Offsets that raise macro-F1 of ``probs`` (N, 18) against ``targets`` (N,).

    With ``groups`` (the person of each row) the share of the fitted offsets kept is chosen
    by two-fold cross-validation over people; offsets fitted and scored on the same images
    overshoot. Returns ``{"offsets": {task: [...]}, "share", "f1_before", "f1_after",
    "images"}``; ``f1_after >= f1_before`` always (both on these images)."""
    probs = np.asarray(probs, dtype=np.float64)
    log_probs = np.log(np.clip(probs, 1e-12, None))
    truth = torch.tensor(np.asarray(targets, dtype=np.int64))
    zero = {t: np.zeros(len(names)) for t, names in labels.TASKS.items()}
    before = _macro_f1(log_probs, class_offsets(zero), truth)
    full = _ascend(log_probs, truth)
    share = 1.0 if groups is None else _cross_validated_share(log_probs, truth,
                                                               np.asarray(groups))
    offsets = _scaled(full, share)
    after = _macro_f1(log_probs, class_offsets(offsets), truth)
    if after < before:  # never below no offsets on the images they were fitted on
        offsets, after, share = zero, before, 0.0
    return {"offsets": {t: [float(v) for v in vals] for t, vals in offsets.items()},
            "share": share, "f1_before": before, "f1_after": after, "images": len(truth)}


def save(result: Mapping[str, Any], path: Path) -> Path:
    """Write ``result`` to ``path`` (a run's ``calibration.json``)."""
    atomic.write_text(path, json.dumps(result, indent=2) + "\n")
    return path


def load(path: Path) -> dict[str, list[float]]:
    """The offsets saved in ``path`` (a run's ``calibration.json``), checked."""
    if not path.exists():
        raise CheckpointError(f"calibrate=true: {path} does not exist; train.py writes it at the "
                              "end of every run (runs made before calibration existed have none:"
                              " predict them with calibrate=false)")
    try:
        offsets = json.loads(path.read_text())["offsets"]
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path} is damaged ({type(e).__name__}: {e}); delete it and "
                              "predict with calibrate=false") from None
    return check_offsets(offsets, str(path))


# Offsets are log-probability shifts; the fit searches GRID. Far beyond it, exp() overflows
# and every image lands in one class: such a file was not written by ``fit``.
LIMIT = 50.0


def check_offsets(offsets: Any, where: str) -> dict[str, list[float]]:
    """``{mask: [3], gender: [2], age: [3]}`` of finite numbers within +-LIMIT, else an error
    naming ``where`` (a calibration.json, an exported model)."""
    try:
        out = {t: [float(v) for v in offsets[t]] for t in labels.TASKS}
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: calibration offsets are damaged ({type(e).__name__}: "
                              f"{e}); delete them and predict with calibrate=false") from None
    for task, names in labels.TASKS.items():
        values = out[task]
        if len(values) != len(names) or not all(np.isfinite(values)) or \
                max(abs(v) for v in values) > LIMIT:
            raise CheckpointError(
                f"{where}: calibration offsets of {task} must be {len(names)} finite numbers "
                f"within +-{LIMIT:g}, got {offsets[task]!r}; delete the file (or fit it again "
                "by training) and predict with calibrate=false")
    return out


def mean_offsets(parts: Sequence[Mapping[str, Sequence[float]]]) -> dict[str, list[float]]:
    """The offsets of an ensemble: the mean of its members' (each fitted on its own fold)."""
    return {t: np.mean([np.asarray(p[t], dtype=np.float64) for p in parts], axis=0).tolist()
            for t in labels.TASKS}
