"""The label-issue finder on a held-out tree with injected label errors.

    python -m benchmarks.label_issues                  # 300 people, 5% errors, 5 folds x 2 seeds
    python -m benchmarks.label_issues --persons 600 --errors 0.05 --seed 11 --model-seeds 42
    # a tree in a style no recipe was chosen on, the finder alone (no retraining)
    python -m benchmarks.label_issues --persons 210 --errors 0.1 --folds 3 --model-seeds 42 \
        --style 1 --age-overlap 1 --no-retrain
    # the finder on a recipe other than quick (every sweep and retraining gets the overrides)
    python -m benchmarks.label_issues ... --override data.age_sigma=6

1. Two trees of the same people (one seed): one with ``--label-errors``, one clean.
2. A 5-fold ``experiment=quick`` sweep on the tree with errors, once per ``--model-seeds``
   seed (the same folds), gives every training image one out-of-fold prediction per seed;
   ``python -m maskcls.label_issues`` averages them, ranks the suspects and writes
   ``corrections.csv``.
3. Per field (gender, age, mask swap): recall of the top-K rows, K the number injected (so
   also their precision), and precision and recall of the rows at ``--threshold`` (the ones in
   ``corrections.csv``). Beside them, the ceiling: the same finder on the out-of-fold
   predictions of the variable reader (``benchmarks.ceiling.reader_oof``: the drawn cues, no
   pixels, the same person folds), i.e. how many of the injected errors the drawings let any
   finder of this kind rank first (an age moved into an overlapping group may be invisible).
4. ``experiment=quick`` trained four times, scored on ``eval/answers.csv``: on the clean
   tree, on the tree with errors, on it with ``data.corrections=corrections.csv``, and with
   the corrections of ``--fix age,mask`` (gender left to a human): the share of what the
   errors cost that each corrections file wins back (``--no-retrain`` skips this step).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from benchmarks import markdown_table, publish, run_python
from maskcls.run.same_config import trained_as

ROOT = Path(__file__).resolve().parents[1]


def _train(root: Path, out: Path, overrides: list[str], *extra: str) -> float:
    """``experiment=quick`` (plus ``--override``) on ``root``; its eval macro-F1 (predicted
    with the views the recipe says: ``QUICK_VIEWS``)."""
    from benchmarks.quality_rows import QUICK_VIEWS
    from maskcls.config import PredictData, PredictSettings
    from maskcls.inference import predict

    run_python("train.py", "experiment=quick", f"data.root={root}", "data.synthetic=null",
               f"hydra.run.dir={out}", "callbacks.progress_bar.refresh_rate=0", *overrides,
               *extra)
    return predict(PredictSettings(ckpt=str(out),
                                   data=PredictData(str(root)),
                                   output=str(out / "eval.csv"),
                                   overwrite=True, **QUICK_VIEWS))["score"]["f1"]


def top_k_recall(issues: pd.DataFrame, injected: pd.DataFrame) -> float:
    """The share of the injected people among a field's first K rows, K the number injected."""
    top = issues.head(len(injected))["person_id"]
    return float(top.isin(injected["person_id"]).sum() / len(injected))


def finder_table(issues: pd.DataFrame, truth: pd.DataFrame, threshold: float,
                 reader: pd.DataFrame | None = None) -> list[list[str]]:
    """Per field: injected, top-K recall, precision and recall at ``threshold``, and with
    ``reader`` (the finder on the variable reader's predictions) that top-K recall."""
    rows = []
    for field, injected in truth.groupby("field"):
        mine = issues[issues["field"] == field]
        kept = mine[mine["score"] >= threshold]
        hits = kept["person_id"].isin(injected["person_id"]).sum()
        row = [field, str(len(injected)), f"{top_k_recall(mine, injected):.2f}",
               f"{hits / max(len(kept), 1):.2f}", f"{hits / len(injected):.2f}"]
        if reader is not None:
            row.append(f"{top_k_recall(reader[reader['field'] == field], injected):.2f}")
        rows.append(row)
    return rows


def reader_issues(tree: Path, sweep: Path) -> pd.DataFrame | None:
    """The finder on the variable reader's out-of-fold predictions, on the person folds the
    sweep's jobs recorded: what the drawn cues let it find. None for a tree without
    ``truth.csv``."""
    from omegaconf import OmegaConf

    from benchmarks.ceiling import TRUTH, reader_oof
    from maskcls.label_issues import find_issues
    from maskcls.run import folder as rf

    if not (tree / TRUTH).is_file():
        return None
    data = OmegaConf.load(rf.find_jobs(sweep)[0] / rf.CONFIG).data
    return find_issues(reader_oof(tree, data.n_folds, data.split_seed))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.label_issues", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--persons", type=int, default=300)
    p.add_argument("--errors", type=float, default=0.05)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--eval-persons", type=int, default=100)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--style", type=int, default=0,
                   help="the trees' drawing style (python -m maskcls.synth --style)")
    p.add_argument("--age-overlap", type=float, default=0.0,
                   help="how young the 60+ people look (python -m maskcls.synth --age-overlap)")
    p.add_argument("--model-seeds", default="42,43",
                   help="one k-fold sweep per training seed; the finder averages their predictions")
    p.add_argument("--threshold", type=float, default=0.8)
    p.add_argument("--override", action="append", default=[],
                   help="extra train.py override for every sweep and retraining (repeatable), "
                        "e.g. data.age_sigma=6")
    p.add_argument("--work", default=str(ROOT / "outputs" / "bench_label_issues"))
    p.add_argument("--reuse", action="store_true",
                   help="keep the trees and the sweep already in --work (only retrain)")
    p.add_argument("--no-retrain", action="store_true",
                   help="measure the finder only, without the four retrainings")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "label_issues.md"))
    return p


def _find(a: argparse.Namespace, work: Path, trees: dict[str, Path], seeds: list[int],
          sweeps: list[Path]) -> None:
    """The trees (unless reused), one k-fold sweep per seed, and the finder on them (twice:
    every field, and --fix age,mask)."""
    import shutil

    if not a.reuse:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    # the clean twin is only trained on by the retrainings; a --reuse of a --no-retrain
    # folder writes it then
    kinds = [("errors", a.errors)] + ([] if a.no_retrain else [("clean", 0.0)])
    for name, share in kinds:
        _check_kept_tree(trees[name], a, share)
        if not trees[name].exists():
            run_python("-m", "maskcls.synth", "--out", str(trees[name]), "--persons",
                       str(a.persons), "--eval-persons", str(a.eval_persons), "--seed",
                       str(a.seed), "--label-errors", str(share), "--style", str(a.style),
                       "--age-overlap", str(a.age_overlap))
    for seed, sweep in zip(seeds, sweeps, strict=True):
        job = ["experiment=quick", f"seed={seed}", f"data.root={trees['errors']}",
               "data.synthetic=null", f"data.n_folds={a.folds}",
               "callbacks.progress_bar.refresh_rate=0", *a.override]
        if (sweep / "summary.csv").exists() and not all(
                trained_as(sweep / str(k), [*job, f"data.fold={k}"]) for k in range(a.folds)):
            # kept from before experiment=quick (or these flags) changed: its out-of-fold
            # predictions would be another recipe's
            print(f"{sweep}: trained with another config than this command's; training it "
                  "again", flush=True)
            shutil.rmtree(sweep)
        if not (sweep / "summary.csv").exists():
            run_python("train.py", "-m", *job, f"data.fold=range({a.folds})",
                       f"hydra.sweep.dir={sweep}")
    for out, fix in ((work, []), (work / "age_mask", ["--fix", "age,mask"])):
        out.mkdir(exist_ok=True)
        run_python("-m", "maskcls.label_issues", *map(str, sweeps), "--out", str(out),
                   "--threshold", str(a.threshold), "--overwrite", *fix)


def _check_kept_tree(tree: Path, a: argparse.Namespace, share: float) -> None:
    """With ``--reuse``, a tree already in ``--work`` must be the one these flags draw: the
    finder's recall on another tree would be read as this one's."""
    import json

    if not tree.exists():
        return
    record = tree / "synthetic.json"
    if not record.is_file():
        raise SystemExit(f"{tree}: --reuse keeps this tree, but it has no synthetic.json (its "
                         "drawing was cut short?). Remove it, or leave out --reuse.")
    made = json.loads(record.read_text())
    wanted = {"persons": a.persons, "eval_persons": a.eval_persons, "seed": a.seed,
              "label_errors": share, "style": a.style, "age_overlap": a.age_overlap}
    differ = [f"{k} {made.get(k)} (asked: {v})" for k, v in wanted.items() if made.get(k) != v]
    if differ:
        raise SystemExit(f"{tree}: --reuse keeps this tree, but it was drawn with "
                         f"{', '.join(differ)}. Give another --work, or leave out --reuse to "
                         "draw it again.")


def _retrain(work: Path, trees: dict[str, Path], overrides: list[str]) -> dict[str, float]:
    """Eval macro-F1 trained on the clean tree, on the tree with errors, and on it with each
    corrections.csv the finder wrote."""
    import shutil

    runs = work / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    return {"clean": _train(trees["clean"], runs / "clean", overrides),
            "errors": _train(trees["errors"], runs / "errors", overrides),
            "corrected": _train(trees["errors"], runs / "corrected", overrides,
                                f"data.corrections={work / 'corrections.csv'}"),
            "age_mask": _train(trees["errors"], runs / "age_mask", overrides,
                               f"data.corrections={work / 'age_mask' / 'corrections.csv'}")}


def _retrain_table(f1: dict[str, float]) -> str:
    """The four retrainings' eval macro-F1, with the share of the errors' cost won back."""
    cost = f1["clean"] - f1["errors"]

    def regained(key: str) -> str:
        return f"{(f1[key] - f1['errors']) / cost:.2f}" if cost > 0 else "n/a"

    return markdown_table(
        "eval macro-F1 of experiment=quick (flip TTA) against the true labels",
        ["trained on", "eval macro-F1"],
        [["the clean tree", f"{f1['clean']:.4f}"], ["the tree with errors", f"{f1['errors']:.4f}"],
         ["the tree with errors + corrections.csv",
          f"{f1['corrected']:.4f} (wins back {regained('corrected')} of the cost)"],
         ["the tree with errors + corrections.csv of --fix age,mask",
          f"{f1['age_mask']:.4f} (wins back {regained('age_mask')} of the cost)"]])


# keys the benchmark sets itself: an --override of one would measure another experiment
OWN_KEYS = ("seed", "data.root", "data.synthetic", "data.n_folds", "data.fold",
            "data.corrections", "hydra.")


def main(argv: list[str] | None = None) -> None:
    p = _parser()
    a = p.parse_args(argv)
    for o in a.override:
        key = o.split("=", 1)[0].lstrip("+~")
        if "=" not in o or key.startswith(OWN_KEYS):
            p.error(f"--override {o!r}: give KEY=VALUE for a key the benchmark does not set "
                    f"itself ({', '.join(OWN_KEYS)} are; seeds come from --model-seeds)")
    work = Path(a.work)
    trees = {"errors": work / "errors", "clean": work / "clean"}
    seeds = [int(s) for s in a.model_seeds.split(",")]
    # the first seed's sweep keeps the name "cv", so a --reuse of an older work folder works
    sweeps = [work / ("cv" if i == 0 else f"cv-seed{s}") for i, s in enumerate(seeds)]
    t0 = time.perf_counter()
    _find(a, work, trees, seeds, sweeps)
    issues = pd.read_csv(work / "label_issues.csv", dtype={"person_id": str})
    truth = pd.read_csv(trees["errors"] / "label_errors.csv", dtype=str, keep_default_na=False)
    reader = reader_issues(trees["errors"], sweeps[0])
    found = finder_table(issues, truth, a.threshold, reader)
    style = f", style {a.style}, 60+ overlap {a.age_overlap:g}" if a.style or a.age_overlap else ""
    title = (f"{a.persons} people ({a.errors:.0%} with a wrong label, seed {a.seed}{style}), "
             f"{a.folds}-fold experiment=quick x {len(seeds)} seed(s) ({a.model_seeds}) for the "
             f"out-of-fold predictions, threshold {a.threshold}")
    if a.override:
        title += f"; every run with {' '.join(a.override)}"
    header = ["field", "injected", "top-K recall (= precision)", "precision at threshold",
              "recall at threshold"]
    if reader is not None:
        header.append("variable reader's top-K recall (the ceiling)")
    f1 = None if a.no_retrain else _retrain(work, trees, a.override)
    table = markdown_table(f"{title}; {time.perf_counter() - t0:.0f} s in all", header, found)
    if f1 is not None:
        table += "\n\n" + _retrain_table(f1)
    publish(table, a.out)


if __name__ == "__main__":
    main()
