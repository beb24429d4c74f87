"""Find mislabelled people and swapped shots from out-of-fold predictions, and write the fix.

    python -m maskcls.label_issues outputs/multirun/<date>/<time>      # a cross-validation sweep
    python -m maskcls.label_issues RUN_A RUN_B ... [--out DIR] [--threshold 0.8]

Every training image needs a prediction from a model that did not train on it: the
``val_predictions.csv`` of the folds of a k-fold sweep (``'data.fold=range(5)'``) cover them
all. An image predicted by several runs (a sweep over ``seed=42,43`` too, or several sweeps
given) gets the mean of their probabilities: one model is now and then sure about a rare
look-alike, two seeds seldom agree on it, while a mislabelled person looks wrong to both.
A person's seven photos share one gender and age, so those are judged per person, on the
mean of the person's out-of-fold probabilities; the mask is judged per photo, and the known
error of this data, a person's ``incorrect_mask`` and ``normal`` shots swapped, per pair.
Scores are cleanlab's label-quality scores (``cleanlab.rank.get_label_quality_scores``: the
probability the models give the recorded label), turned into ``score = 1 - quality``: 1 is
most suspicious.

Writes into ``DIR`` (default: the first PATH):

* ``label_issues.csv``: ``person_id, field, given, suggested, score``, most suspicious first
  (``field`` gender, age or mask; for mask, given / suggested name the two shots' labels);
* ``corrections.csv``: the rows of the ``--fix`` fields (default all three) scoring at least
  ``--threshold``, in the ``data.corrections`` format (``gender``, ``age``, and ``swap`` rows):
  retrain with ``data.corrections=<it>``;
* ``label_issues.png``: the top suspects' photos with their given and suggested labels.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from maskcls import atomic, labels
from maskcls.data import catalog as cat
from maskcls.errors import ConfigError, DataLayoutError, one_line_errors
from maskcls.run import folder as rf
from maskcls.run.output_paths import check_output

PROB_COLUMNS = [f"prob_{c}" for c in range(labels.NUM_CLASSES)]
SWAP = ("incorrect_mask", "normal")
COLUMNS = ["person_id", "field", "given", "suggested", "score"]
# Below this out-of-fold macro-F1 the models are too weak for their doubts to mean anything.
MIN_OOF_F1 = 0.2


def load_oof(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Every validation prediction of the runs (or sweeps' jobs) named, one row per image
    (an image predicted by several runs gets the mean of their probabilities)."""
    runs: list[Path] = []
    for p in map(Path, paths):
        if (p / rf.VAL_PREDICTIONS).exists():
            runs.append(p)
        elif p.is_dir():
            runs += [j for j in rf.find_jobs(p) if (j / rf.VAL_PREDICTIONS).exists()]
    if not runs:
        raise DataLayoutError(f"no {rf.VAL_PREDICTIONS} in {', '.join(map(str, paths))}: give "
                              "a finished cross-validation sweep or run folders")
    table = pd.concat([_read_predictions(r / rf.VAL_PREDICTIONS) for r in runs],
                      ignore_index=True)
    table = table[~table["person_id"].str.contains(":", regex=False)]  # pseudo / SMOTE rows
    # <root>/train/images/<folder>/<file>: the tree each prediction came from
    roots = sorted({str(Path(p).parent.parent.parent.parent) for p in table["path"]})
    if len(roots) > 1:
        raise DataLayoutError(f"the predictions come from {len(roots)} data trees ("
                              f"{', '.join(roots[:3])}); a person is judged on one tree: give "
                              "the runs of one tree")
    probs = table.groupby("path")[PROB_COLUMNS].mean()
    first = table.drop_duplicates("path").set_index("path")[["folder", "person_id", "label"]]
    out = first.join(probs).reset_index()
    out["stem"] = out["path"].map(lambda p: Path(p).stem)
    return out


def _read_predictions(path: Path) -> pd.DataFrame:
    """One run's ``val_predictions.csv``, checked: every column, labels 0..17, probabilities
    in [0, 1] (a truncated or edited file is named, not scored as NaN)."""
    try:
        table = pd.read_csv(path, dtype={"person_id": str, "folder": str, "path": str})
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise DataLayoutError(f"{path} cannot be read ({type(e).__name__}); train the run "
                              "again or leave it out") from None
    missing = [c for c in ["path", "folder", "person_id", "label", *PROB_COLUMNS]
               if c not in table.columns]
    if missing:
        raise DataLayoutError(f"{path} lacks column(s) {', '.join(missing[:4])}"
                              f"{' ...' if len(missing) > 4 else ''}; was it written by this "
                              "version of train.py?")
    numbers = table[["label", *PROB_COLUMNS]].apply(pd.to_numeric, errors="coerce")
    bad = numbers.isna().any(axis=1) | ~numbers["label"].isin(range(labels.NUM_CLASSES)) | \
        ((numbers[PROB_COLUMNS] < 0) | (numbers[PROB_COLUMNS] > 1)).any(axis=1) | \
        table[["path", "folder", "person_id"]].isna().any(axis=1)
    if table.empty or bad.any():
        where = f"row {int(np.flatnonzero(bad)[0]) + 2}" if bad.any() else "no rows"
        raise DataLayoutError(f"{path}: {where} is not a prediction (a label 0..17 and 18 "
                              "probabilities in 0..1); the file was cut short or edited: train "
                              "the run again or leave it out")
    table[numbers.columns] = numbers
    table["label"] = table["label"].astype(int)
    return table


def check_folds(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Warnings for a cross-validation sweep that is missing folds: the people of a missing
    fold have no out-of-fold prediction and are not judged."""
    notes = []
    for p in map(Path, paths):
        if (p / rf.VAL_PREDICTIONS).exists() or not p.is_dir():
            continue
        jobs = rf.find_jobs(p)
        done = [j for j in jobs if (j / rf.VAL_PREDICTIONS).exists()]
        if len(done) < len(jobs):
            left = ", ".join(j.name for j in jobs if j not in done)
            notes.append(f"{p}: job(s) {left} have no {rf.VAL_PREDICTIONS} (failed or "
                         "unfinished); their validation people are not judged")
    return notes


def _quality(given: np.ndarray, probs: np.ndarray) -> np.ndarray:
    from cleanlab.rank import get_label_quality_scores

    probs = probs / probs.sum(1, keepdims=True)
    return get_label_quality_scores(labels=given, pred_probs=probs)


def person_issues(oof: pd.DataFrame) -> pd.DataFrame:
    """Gender and age group per person: the mean of the person's photos' probabilities."""
    _, gender_p, age_p = labels.task_marginals(oof[PROB_COLUMNS].to_numpy())
    _, gender, age = labels.decode(oof["label"].to_numpy())
    rows = []
    for field, probs, given, names in (("gender", gender_p, gender, labels.GENDER_NAMES),
                                       ("age", age_p, age, labels.AGE_GROUP_NAMES)):
        per = pd.DataFrame(probs).groupby(oof["folder"].to_numpy()).mean()
        given_per = pd.Series(given).groupby(oof["folder"].to_numpy()).first().loc[per.index]
        p = per.to_numpy()
        score = 1 - _quality(given_per.to_numpy(), p)
        suggested = p.argmax(1)
        for folder, g, s, sc in zip(per.index, given_per, suggested, score, strict=True):
            if s != g:
                rows.append((folder, field, names[g], names[s], float(sc)))
    return pd.DataFrame(rows, columns=["folder", "field", "given", "suggested", "score"])


def swap_issues(oof: pd.DataFrame) -> pd.DataFrame:
    """A person's ``incorrect_mask`` and ``normal`` photos that look like each other's shot."""
    mask_p = labels.task_marginals(oof[PROB_COLUMNS].to_numpy())[0]
    given = labels.decode(oof["label"].to_numpy())[0]
    quality = pd.Series(_quality(given, mask_p), index=oof.index)
    rows = []
    for folder, shots in oof[oof["stem"].isin(SWAP)].groupby("folder"):
        row = dict(zip(shots["stem"], shots.index, strict=True))  # oof has a RangeIndex
        if not set(SWAP) <= set(row):
            continue
        pi, pn = mask_p[row[SWAP[0]]], mask_p[row[SWAP[1]]]
        # likelier swapped than as labelled: incorrect-shot looks not worn, normal looks incorrect
        if pi[2] * pn[1] <= pi[1] * pn[2]:
            continue
        score = 1 - float(quality[shots.index].mean())
        rows.append((folder, "mask", f"{SWAP[0]}=incorrect,{SWAP[1]}=not_worn",
                     f"{SWAP[0]}=not_worn,{SWAP[1]}=incorrect", score))
    return pd.DataFrame(rows, columns=["folder", "field", "given", "suggested", "score"])


def find_issues(oof: pd.DataFrame) -> pd.DataFrame:
    """``label_issues.csv``'s rows (with the folder), most suspicious first."""
    issues = pd.concat([person_issues(oof), swap_issues(oof)], ignore_index=True)
    ids = oof.drop_duplicates("folder").set_index("folder")["person_id"]
    issues.insert(0, "person_id", issues["folder"].map(ids))
    return issues.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def _nearest_age(folder: str, group: str) -> int:
    """The folder's age moved into ``group`` (the nearest age there)."""
    age = int(cat.FOLDER_RE.match(folder)["age"])
    lo, hi = labels.DEFAULT_AGE_BOUNDS
    bounds = {"<30": (0, lo - 1), "30-59": (lo, hi - 1), ">=60": (hi, hi)}[group]
    return int(min(max(age, bounds[0]), bounds[1]))


FIELDS = ("gender", "age", "mask")


def corrections(issues: pd.DataFrame, threshold: float,
                fields: Sequence[str] = FIELDS) -> pd.DataFrame:
    """The confident rows of ``fields`` as ``data.corrections`` rows; an id filed in several
    folders is left out (a fix by id would change every folder)."""
    shared = issues["person_id"].map(issues.groupby("person_id")["folder"].nunique()) > 1
    chosen = (issues["score"] >= threshold) & ~shared & issues["field"].isin(fields)
    rows = []
    for r in issues[chosen].itertuples(index=False):
        if r.field == "gender":
            rows.append((r.person_id, "gender", r.suggested))
        elif r.field == "age":
            rows.append((r.person_id, "age", _nearest_age(r.folder, r.suggested)))
        else:
            rows.append((r.person_id, "swap", "+".join(sorted(SWAP))))
    return pd.DataFrame(rows, columns=["person_id", "field", "value"])


def write(paths: Sequence[str | os.PathLike], out: Path, threshold: float = 0.8,
          top: int = 16, fields: Sequence[str] = FIELDS, overwrite: bool = False,
          min_f1: float = MIN_OOF_F1) -> dict[str, Path | int | float]:
    """Find the issues of the runs at ``paths`` and write the three files into ``out``
    (created when missing, once the predictions are read and judged good enough)."""
    oof = load_oof(paths)
    from maskcls.model.metrics import score  # torch: here, so --help is instant

    f1 = score(oof[PROB_COLUMNS].to_numpy().argmax(1), oof["label"].to_numpy())["f1"]
    if f1 < min_f1:
        raise ConfigError(f"the out-of-fold macro-F1 of these runs is {f1:.3f}, below --min-f1 "
                          f"{min_f1}: models that near chance (18 classes: about 0.05) cannot "
                          "tell a label error from their own; train the folds longer (e.g. "
                          "experiment=quick), or pass --min-f1 0 to write the files anyway")
    out.mkdir(parents=True, exist_ok=True)
    files = {"csv": out / "label_issues.csv", "corrections": out / "corrections.csv",
             "png": out / "label_issues.png"}
    for key, suffix in (("csv", ".csv"), ("corrections", ".csv"), ("png", ".png")):
        check_output(files[key], "--out", suffix, overwrite=overwrite,
                     overwrite_flag="--overwrite (corrections.csv may hold your edits)")
    issues = find_issues(oof)
    from maskcls.analysis.galleries import label_issues_png  # matplotlib: only when writing

    atomic.write_csv(issues[COLUMNS], files["csv"], float_format="%.4f")
    fixes = corrections(issues, threshold, fields)
    atomic.write_csv(fixes, files["corrections"])
    label_issues_png(issues.head(top), oof, files["png"])
    return {**files, "images": len(oof), "people": oof["folder"].nunique(), "oof_f1": f1,
            "issues": len(issues), "fixes": len(fixes)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m maskcls.label_issues", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", help="a cross-validation sweep folder, or run folders")
    p.add_argument("--out", default=None, help="folder for the three files (default: the "
                                                "first PATH)")
    p.add_argument("--threshold", type=float, default=0.8,
                   help="score from which a row goes into corrections.csv (default 0.8)")
    p.add_argument("--top", type=int, default=16, help="suspects shown in label_issues.png "
                                                        "(default 16)")
    p.add_argument("--min-f1", type=float, default=MIN_OOF_F1,
                   help="refuse runs whose out-of-fold macro-F1 is below this (default "
                        f"{MIN_OOF_F1}; chance is about 0.05)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the three files if they exist (default: refuse)")
    p.add_argument("--fix", default=",".join(FIELDS),
                   help="fields whose confident rows go into corrections.csv (default "
                        "gender,age,mask; e.g. age,mask to review gender by eye first)")
    a = p.parse_args(argv)
    if not 0 <= a.threshold <= 1:
        p.error(f"--threshold must be in 0..1, got {a.threshold}")
    fields = [f.strip() for f in a.fix.split(",") if f.strip()]
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown or not fields:
        p.error(f"--fix takes a comma-separated subset of {','.join(FIELDS)}, got {a.fix!r}")
    if a.top < 1:
        p.error(f"--top must be >= 1, got {a.top}")
    out = Path(a.out or a.paths[0]).expanduser()
    if out.exists() and not out.is_dir():
        p.error(f"--out {out} is a file, not a folder")
    with one_line_errors():
        for note in check_folds(a.paths):
            print(f"warning: {note}")
        res = write(a.paths, out, a.threshold, a.top, fields, a.overwrite, a.min_f1)
    print(f"{res['images']} images of {res['people']} people with out-of-fold predictions "
          f"(macro-F1 {res['oof_f1']:.3f}); "
          f"{res['issues']} suspected label issue(s), {res['fixes']} of {','.join(fields)} at "
          f"score >= {a.threshold}")
    print(f"wrote {res['csv']}\nwrote {res['corrections']} (retrain with "
          f"data.corrections={res['corrections']})\nwrote {res['png']}")


if __name__ == "__main__":
    main()
