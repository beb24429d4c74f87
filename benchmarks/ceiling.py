"""What a synthetic tree allows: a classifier that reads the generator's drawing variables.

    python -m benchmarks.ceiling data/quality/tree-...        # one or more trees

The generator records, for every image, the variables its label shows through
(``truth.csv``: mask state and placement, hair cut, beard and lips where the mask leaves them
visible, grey and white hair, wrinkles, eye bags, receding hairline). A gradient-boosted
classifier per task reads them, no pixels, trained on the people a run trains on (the same
person split: ``data.val_ratio`` 0.2, ``data.split_seed`` 42) and scored on ``eval/`` exactly
as a submission is: macro-F1 of the 18 classes against ``eval/answers.csv``. The three tasks'
probabilities multiply into the 18 classes, as the network's per-task heads do. "tuned" adds
the macro-F1 decision offsets fitted on the held-out people, as ``calibrate=true`` does.

The result is an estimate of the best a network can do on that tree with that many people:
the cues are blurred by the age noise (``difficulty``), a few people wear the other gender's
haircut, and the 60+ and 55-59 people overlap when the tree is drawn with ``--age-overlap``.
A network that scores near it has learned what the pixels hold; the gap is the recipe's.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import markdown_table

TRUTH = "truth.csv"
# what a reader sees: the mask and where it sits, and each cue where the mask leaves it visible
FEATURES = ["has_mask", "mask_top", "hair_long", "hair_jaw", "beard_seen", "lips_seen",
            "grey", "white", "wrinkles", "eye_bags", "recede"]


# the truth.csv columns the features are made of
DRAWN = ["mask", "mask_top", "hair_cut", "beard", "beard_visible", "lips_female",
         "mouth_visible", "grey", "white", "wrinkles", "eye_bags", "recede"]


def features(truth: pd.DataFrame) -> np.ndarray:
    mouth = truth["mouth_visible"].astype(bool)
    chin = truth["beard_visible"].astype(bool)
    table = pd.DataFrame({
        "has_mask": (truth["mask"] != 2).astype(float),
        "mask_top": truth["mask_top"],
        "hair_long": (truth["hair_cut"] == "long").astype(float),
        "hair_jaw": (truth["hair_cut"] == "jaw").astype(float),
        "beard_seen": truth["beard"].astype(float).where(chin),
        "lips_seen": truth["lips_female"].astype(float).where(mouth),
        **{c: truth[c] for c in ("grey", "white", "wrinkles", "eye_bags", "recede")},
    })
    return table[FEATURES].to_numpy(dtype=float)


def _task_log_probs(x_fit: np.ndarray, labels_fit: np.ndarray, x: np.ndarray, n: int,
                    seed: int) -> np.ndarray:
    """log P(task value | variables) for rows ``x``, a classifier fitted on ``x_fit``."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    if len(np.unique(labels_fit)) == 1:  # a tiny tree: one value seen, nothing to learn
        probs = np.full((len(x), n), 1e-6)
        probs[:, labels_fit[0]] = 1.0
        return np.log(probs / probs.sum(1, keepdims=True))
    clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05,
                                         l2_regularization=1.0, random_state=seed)
    clf.fit(x_fit, labels_fit)
    probs = np.full((len(x), n), 1e-6)
    probs[:, clf.classes_] = clf.predict_proba(x)
    return np.log(probs / probs.sum(1, keepdims=True))


def _read_truth(root: Path) -> pd.DataFrame:
    path = root / TRUTH
    if not path.is_file():
        raise SystemExit(f"error: {path} does not exist; trees written by maskcls.synth since "
                         "2026-12-05 record it: generate the tree again")
    truth = pd.read_csv(path)
    truth["key"] = [str(root / p) for p in truth["path"]]
    return truth


def _train_table(root: Path, truth: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the training catalog as a run scans it, the same rows with their drawn variables).
    Where a label and a variable share a name (``mask``), the variable wins: on a tree with
    label errors the reader must see the shot as drawn, not as recorded."""
    from maskcls.data.catalog import scan_train

    catalog = scan_train(root)
    drawn = truth[["key", *DRAWN]]
    return catalog, catalog.merge(drawn, left_on="path", right_on="key",
                                  suffixes=("_given", ""))


def _joint_probs(x_fit: np.ndarray, label_fit: np.ndarray, x: np.ndarray,
                 seed: int) -> np.ndarray:
    """(N, 18) probabilities of rows ``x``: one reader per task fitted on the recorded labels."""
    from maskcls import labels

    given = labels.decode(label_fit)
    parts = [_task_log_probs(x_fit, given[task], x, len(values), seed + task)
             for task, values in enumerate(labels.TASKS.values())]
    return np.exp(labels.joint_log_probs(*parts))


def reader_oof(root: str | Path, n_folds: int, split_seed: int = 42) -> pd.DataFrame:
    """The variable reader's out-of-fold probabilities for every training image, in the
    table ``maskcls.label_issues.load_oof`` makes of a sweep's ``val_predictions.csv``: each
    fold's people scored by readers fitted on the other folds (the person folds of
    ``data.n_folds`` and ``data.split_seed``), on the labels the tree records, errors
    included. The label-issue finder run on it shows what the drawn cues allow it to find."""
    from maskcls.data.splits import kfold_split
    from maskcls.label_issues import PROB_COLUMNS

    root = Path(root)
    catalog, train = _train_table(root, _read_truth(root))
    x, label = features(train), train["label"].to_numpy()
    probs = np.zeros((len(train), len(PROB_COLUMNS)))
    for fold in range(n_folds):
        _, val_ids = kfold_split(catalog, n_folds, fold, split_seed)
        held = train["person_id"].isin(val_ids).to_numpy()
        probs[held] = _joint_probs(x[~held], label[~held], x[held], split_seed)
    out = train[["path", "folder", "person_id", "label"]].copy()
    out[PROB_COLUMNS] = probs
    out["stem"] = [Path(p).stem for p in out["path"]]
    return out


@dataclass(frozen=True)
class _Tree:
    """What every split of one tree's ceiling reads: read once (``_Tree.read``)."""

    root: Path
    catalog: pd.DataFrame
    train: pd.DataFrame
    x_train: np.ndarray
    x_eval: np.ndarray
    eval_label: np.ndarray

    @classmethod
    def read(cls, root: str | Path) -> _Tree:
        root = Path(root)
        truth = _read_truth(root)
        catalog, train = _train_table(root, truth)
        ev = truth[truth["split"] == "eval"]
        answers = pd.read_csv(root / "eval" / "answers.csv").set_index("ImageID")["ans"]
        eval_label = answers.reindex([Path(p).name for p in ev["path"]]).to_numpy()
        return cls(root, catalog, train, features(train), features(ev), eval_label)


def ceiling(root: str | Path, val_ratio: float = 0.2, split_seed: int = 42) -> dict[str, Any]:
    """Eval scores of the variable reader on the tree at ``root`` (see the module doc)."""
    return _split_scores(_Tree.read(root), val_ratio, split_seed)


def _split_scores(tree: _Tree, val_ratio: float, split_seed: int) -> dict[str, Any]:
    from maskcls import labels
    from maskcls.data.splits import holdout_split
    from maskcls.inference import calibration
    from maskcls.model.metrics import score

    train, ev_label = tree.train, tree.eval_label
    train_ids, val_ids = holdout_split(tree.catalog, val_ratio, split_seed)
    fit = train["person_id"].isin(train_ids).to_numpy()
    held = train["person_id"].isin(val_ids).to_numpy()
    probs = _joint_probs(tree.x_train[fit], train["label"].to_numpy()[fit],
                         np.vstack([tree.x_train[held], tree.x_eval]), split_seed)
    held_probs, eval_probs = probs[:held.sum()], probs[held.sum():]
    plain = score(eval_probs.argmax(1), ev_label, detail=True)
    fitted = calibration.fit(held_probs, train["label"].to_numpy()[held],
                             groups=train["person_id"].to_numpy()[held])
    tuned = score(calibration.apply(eval_probs, fitted["offsets"]).argmax(1), ev_label,
                  detail=True)
    out: dict[str, Any] = {"tree": tree.root.name, "train_people": len(train_ids),
                           "eval_images": len(ev_label)}
    for key, s in (("", plain), ("tuned_", tuned)):
        out.update({f"{key}{m}": s[m] for m in ("f1", "acc", "f1_mask", "f1_gender", "f1_age")})
        out[f"{key}rare_60+"] = rare_60(s["f1_per_class"])
        out[f"{key}f1_per_class"] = s["f1_per_class"]
    out["mask_acc"] = float((labels.decode(eval_probs.argmax(1))[0] ==
                             labels.decode(ev_label)[0]).mean())
    return out


SPLITS = 8  # person splits a tree's ceiling is averaged over (``ceiling_over_splits``)
SPREAD = ("f1", "tuned_f1", "f1_mask", "f1_gender", "f1_age", "tuned_rare_60+", "mask_acc")


def ceiling_over_splits(root: str | Path, splits: int = SPLITS, val_ratio: float = 0.2,
                        split_seed: int = 42) -> dict[str, Any]:
    """The reader's scores on ``splits`` person splits (split seeds ``split_seed``,
    ``split_seed + 1``, ...): the first split's results (the run's own, as ``ceiling``), with
    ``<metric>_mean`` and ``<metric>_sd`` over all of them. Which of a 300-person tree's dozen
    60+ people the reader learns from moves one split's macro-F1 by up to 0.3, so a share of
    the ceiling is read against the mean."""
    if splits < 1:
        raise ValueError(f"splits must be at least 1, got {splits}")
    tree = _Tree.read(root)  # the tree is read once, not once a split
    runs = [_split_scores(tree, val_ratio, split_seed + k) for k in range(splits)]
    out = dict(runs[0], splits=splits)
    for m in SPREAD:
        values = np.array([r[m] for r in runs])
        out[f"{m}_mean"], out[f"{m}_sd"] = float(values.mean()), float(values.std())
    return out


def rare_60(f1_per_class: Any) -> float:
    """The mean F1 of the six 60+ classes."""
    from maskcls import labels

    return float(np.mean([f for c, f in enumerate(f1_per_class)
                          if labels.decode(c)[2] == 2]))


COLUMNS = ["tree", "train people", "macro-F1", "tuned macro-F1", "tuned, mean ± std over splits",
           "F1 mask", "F1 gender", "F1 age", "F1 60+ classes (tuned)", "mask accuracy"]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ceiling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("roots", nargs="+", metavar="ROOT", help="synthetic trees (with truth.csv)")
    p.add_argument("--val-ratio", type=float, default=0.2,
                   help="share of people held out, as data.val_ratio (default 0.2)")
    p.add_argument("--split-seed", type=int, default=42,
                   help="the person split's seed, as data.split_seed (default 42)")
    p.add_argument("--splits", type=int, default=SPLITS,
                   help=f"person splits the mean and spread are taken over, split seeds "
                        f"--split-seed, --split-seed + 1, ... (default {SPLITS})")
    args = p.parse_args(argv)
    if args.splits < 1:
        p.error(f"--splits must be at least 1, got {args.splits}")
    results = [ceiling_over_splits(r, args.splits, args.val_ratio, args.split_seed)
               for r in args.roots]
    rows = [[r["tree"], r["train_people"], f"{r['f1']:.4f}", f"{r['tuned_f1']:.4f}",
             f"{r['tuned_f1_mean']:.4f} ± {r['tuned_f1_sd']:.4f}",
             f"{r['f1_mask']:.3f}", f"{r['f1_gender']:.3f}", f"{r['f1_age']:.3f}",
             f"{r['rare_60+']:.3f} ({r['tuned_rare_60+']:.3f})", f"{r['mask_acc']:.3f}"]
            for r in results]
    title = (f"The variable reader's eval scores (the tree's ceiling): split seed "
             f"{args.split_seed}, and the tuned macro-F1 over {args.splits} person splits")
    print(markdown_table(title, COLUMNS, rows))
    return results


if __name__ == "__main__":
    sys.exit(main() and 0)
