"""Learning quality on held-out trees: what each recipe scores on data it was not tuned on,
and how much of that is seed-to-seed noise.

    python -m benchmarks.quality --only quick       # quick on the three held-out trees
    python -m benchmarks.quality                    # baseline, default, quick
    python -m benchmarks.quality --ablations        # + quick with each item switched off or on
    python -m benchmarks.quality --trees 31:2:1,32:1:0.5 --persons 300
    python -m benchmarks.quality --only quick --held-out-styles   # styles never tuned on
    python -m benchmarks.quality --only quick,"quick, seed 43" --reuse   # score again, add rows
    python -m benchmarks.quality --only "quick,quick + EMA" --held-out-styles --seeds 42,43

Every row runs on each held-out tree (``--trees``: ``seed:difficulty:framing[:style[:overlap]]``,
generated once into ``--work``; none is the default tree any recipe was tuned on;
``--held-out-styles``: trees drawn in styles no recipe was chosen on, with the 60+ looking as
young as the 55-59s). Beside each score stands the tree's ceiling (``benchmarks.ceiling``: a
classifier reading the drawing variables, tuned for macro-F1, averaged over eight person
splits) and the share of it reached.
Every recipe trains as ``train.py`` does, in its own process, under the same wall-time cap
(``trainer.max_time``), predicts ``eval/`` and is scored against ``eval/answers.csv``:
macro-F1, accuracy, per-task F1, and the mean F1 of the rare groups (the six 60+ classes, the
nine male classes), each as mean +- std over the trees, with every tree's macro-F1 beside it,
and each row's paired difference to ``quick`` on the same trees (mean +- std): the row
"quick, seed 43" shows what seed noise alone gives there. ``--seeds`` trains every row from
several seeds on each tree, pairs it with quick seed by seed, counts the pairs it is ahead in
and states quick's own seed spread: a change is promoted only if it wins beyond that. Rows
that only change prediction (calibration, TTA) reuse their recipe's run. The table is printed
and written as markdown to ``--out``.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import markdown_table, publish
from benchmarks.quality_rows import ABLATIONS, RECIPES, Row
from maskcls.run.same_config import trained_as

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Tree:
    seed: int
    difficulty: float
    framing: float
    style: int = 0
    age_overlap: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Tree:
        try:
            parts = text.split(":")
            if not 3 <= len(parts) <= 5:
                raise ValueError
            seed, difficulty, framing, *rest = parts
            style = int(rest[0]) if rest else 0
            overlap = float(rest[1]) if len(rest) > 1 else 0.0
            return cls(int(seed), float(difficulty), float(framing), style, overlap)
        except ValueError:
            raise argparse.ArgumentTypeError(
                "a tree is seed:difficulty:framing[:style[:age_overlap]] (e.g. 21:1.5:1 or "
                f"41:1:1:2:1), got {text!r}") from None

    def label(self) -> str:
        extra = f" st{self.style}" if self.style else ""
        extra += f" o{self.age_overlap:g}" if self.age_overlap else ""
        return f"s{self.seed} d{self.difficulty:g} f{self.framing:g}{extra}"


DEFAULT_TREES = "21:1.5:1,22:1:1,23:1.5:0.5"
# Trees drawn in styles no recipe was chosen on, with the 60+ as young-looking as the real ones
HELD_OUT_TREES = "41:1:1:1:1,42:1:1:2:1,43:1:1:3:1"


def held_out_tree(tree: Tree, args: argparse.Namespace) -> Path:
    from maskcls.synth import SynthConfig, generate

    cfg = SynthConfig(persons=args.persons, eval_persons=args.eval_persons, seed=tree.seed,
                      difficulty=tree.difficulty, framing=tree.framing, style=tree.style,
                      age_overlap=tree.age_overlap)
    extra = (f"-st{cfg.style}" if cfg.style else "") + \
        (f"-o{cfg.age_overlap}" if cfg.age_overlap else "")
    root = Path(args.work) / (f"tree-s{cfg.seed}-d{cfg.difficulty}-f{cfg.framing}{extra}"
                              f"-p{cfg.persons}-e{cfg.eval_persons}")
    if not (root / "train" / "images").is_dir():
        generate(root, cfg)
    return root


def face_boxes(root: Path) -> Path:
    """The tree's boxes from the bundled detector, written once; prints how many fell back."""
    from maskcls.faces import write_boxes

    path = root / "face_boxes.csv"
    if not path.exists():
        _, counts, _ = write_boxes(root)
        print(f"face boxes: {dict(counts)}", flush=True)
    return path


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def train_row(row: Row, root: Path, args: argparse.Namespace, runs: dict[str, Path],
              seed: int | None = None) -> float:
    """Train ``row`` with ``train.py`` in a new process (from ``seed``, or the config's);
    returns its wall seconds. With ``--reuse``, a finished run of the row on this tree is
    scored again, not retrained, if it recorded the config the row composes now."""
    # the config's own seed keeps the folder a run without --seeds has, so --reuse finds it
    suffix = "" if seed is None or seed == _config_seed() else f"-seed{seed}"
    out = Path(args.work) / "runs" / root.name / (_slug(row.name) + suffix)
    overrides = [*row.overrides, *([] if seed is None else [f"seed={seed}"]),
                 f"data.root={root}", "data.synthetic=null",
                 f"hydra.run.dir={out}", f"trainer.max_time={_max_time(args.budget)}",
                 "callbacks.progress_bar.refresh_rate=0", *args.override]
    if row.pseudo_from:
        overrides.append(f"data.pseudo_labels={_probs_file(runs, row.pseudo_from)}")
    if row.face_boxes:
        overrides.append(f"data.face_boxes={face_boxes(root)}")
    if args.reuse and (out / "metrics.json").exists():
        if trained_as(out, overrides):
            runs[row.name] = out
            recorded = out / "benchmark.json"
            if recorded.exists():
                return float(json.loads(recorded.read_text())["wall"])
            return float(json.loads((out / "metrics.json").read_text())["wall_seconds"])
        # the row (or conf/, e.g. an experiment) changed since the run: its score would be
        # another recipe's
        print(f"{out}: trained with another config than the row {row.name!r} composes now; "
              "training it again", flush=True)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "train.py", *overrides], cwd=ROOT,
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"{row.name} failed:\n{res.stdout[-1500:]}\n{res.stderr[-3000:]}")
    runs[row.name] = out
    (out / "benchmark.json").write_text(json.dumps({"wall": wall}) + "\n")
    return wall


@functools.cache
def _config_seed() -> int:
    from omegaconf import OmegaConf

    return int(OmegaConf.load(ROOT / "conf" / "train.yaml").seed)


def _max_time(seconds: float) -> str:
    s = int(seconds)
    return f"00:{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _probs_file(runs: dict[str, Path], name: str) -> Path:
    return runs[name] / f"eval_{_slug(name)}_probs.csv"


def score_row(row: Row, run: Path, root: Path) -> dict[str, Any]:
    from maskcls import labels
    from maskcls.config import PredictData, PredictSettings
    from maskcls.inference import predict

    sub = run / f"eval_{_slug(row.name)}.csv"
    predict(PredictSettings(ckpt=str(run),
                            data=PredictData(str(root)),
                            output=str(sub),
                            tta=row.tta,
                            tta_crop=row.tta_crop or 0,  # none unless the row names it
                            calibrate=row.calibrate,
                            save_probs=True,
                            overwrite=True))  # the benchmark's own file
    s = score_detail(sub, root)
    groups = [labels.decode(c) for c in range(labels.NUM_CLASSES)]
    s["rare_60+"] = float(np.mean([f for f, (_, _, a) in zip(s["f1_per_class"], groups,
                                                             strict=True) if a == 2]))
    s["rare_male"] = float(np.mean([f for f, (_, g, _) in zip(s["f1_per_class"], groups,
                                                             strict=True) if g == 0]))
    s["epochs"] = json.loads((run / "metrics.json").read_text())["epochs"]
    return s


def _ratio(score: float, ceiling: float) -> float:
    """The share of the ceiling reached; NaN where the ceiling is unknown or 0 (a tiny tree
    whose eval set holds none of the classes)."""
    return score / ceiling if ceiling > 0 else float("nan")


def tree_ceiling(root: Path) -> dict[str, float]:
    """The variable reader's tuned eval macro-F1 and 60+ F1 on the tree, each the mean over
    ``benchmarks.ceiling.SPLITS`` person splits (one split's moves with which few 60+ people
    it learns from); NaN for a tree generated before ``truth.csv`` existed."""
    from benchmarks.ceiling import TRUTH, ceiling_over_splits

    if not (root / TRUTH).is_file():
        return {"ceiling": float("nan"), "ceiling_60+": float("nan")}
    res = ceiling_over_splits(root)
    print(f"{root.name}: ceiling (variable reader, tuned, mean over {res['splits']} person "
          f"splits) macro-F1 {res['tuned_f1_mean']:.4f} ± {res['tuned_f1_sd']:.4f} (the run's "
          f"split: {res['tuned_f1']:.4f}), 60+ classes {res['tuned_rare_60+_mean']:.3f}",
          flush=True)
    return {"ceiling": res["tuned_f1_mean"], "ceiling_60+": res["tuned_rare_60+_mean"]}


def score_detail(submission: Path, root: Path) -> dict[str, Any]:
    import pandas as pd

    from maskcls.model.metrics import score

    sub = pd.read_csv(submission)
    truth = pd.read_csv(root / "eval" / "answers.csv").set_index("ImageID")["ans"]
    return score(sub["ans"].to_numpy(), truth.reindex(sub["ImageID"]).to_numpy(), detail=True)


COLUMNS = ["recipe", "eval macro-F1", "per tree", "vs quick (paired)", "ceiling",
           "share of ceiling", "accuracy", "F1 mask", "F1 gender", "F1 age", "F1 60+ classes",
           "60+ of the ceiling's", "F1 male classes", "epochs", "wall s"]
METRICS = ["f1", "acc", "f1_mask", "f1_gender", "f1_age", "rare_60+", "rare_male", "ceiling",
           "share", "ceiling_60+", "share_60+"]


def summarise(name: str, runs: list[dict[str, Any]],
              reference: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One row's mean and std over the trees (ddof 1) of every metric, each tree's metrics
    first averaged over its seeds, its per-tree F1s and, against ``reference`` (quick on the
    same trees from the same seeds), the mean and std of the paired F1 differences, one per
    tree and seed, and how many of them it is ahead in: tree difficulty cancels out of those,
    seed noise does not."""
    trees = sorted({r["tree"] for r in runs})
    per_tree = [{m: float(np.mean([r[m] for r in runs if r["tree"] == t]))
                 for m in ["f1", *METRICS]} for t in trees]
    out: dict[str, Any] = {"name": name, "trees": len(trees), "runs": len(runs),
                           "per_tree": [r["f1"] for r in per_tree],
                           "per_run": [r["f1"] for r in runs],
                           "per_tree_ceiling": [r["ceiling"] for r in per_tree],
                           "epochs": sorted({r["epochs"] for r in runs})}
    if reference is not None:
        diff = np.array([r["f1"] - q["f1"] for r, q in zip(runs, reference, strict=True)])
        out["vs_quick"] = float(diff.mean())
        out["vs_quick_std"] = float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
        out["ahead"] = int((diff > 0).sum())
    for m in METRICS:
        values = np.array([r[m] for r in per_tree], dtype=float)
        known = values[~np.isnan(values)]  # a share is NaN where the ceiling is unknown
        out[m] = float(known.mean()) if len(known) else float("nan")
        out[f"{m}_std"] = float(known.std(ddof=1)) if len(known) > 1 else 0.0
    walls = [r["wall"] for r in runs if r["wall"] is not None]
    out["wall"] = float(np.mean(walls)) if walls else None
    return out


def seed_spread(runs: list[dict[str, Any]]) -> float:
    """How far the seed alone moves a recipe: the std of its F1 between the seeds of a tree
    (ddof 1), averaged over the trees; NaN with one seed a tree."""
    trees = sorted({r["tree"] for r in runs})
    spreads = [np.std([r["f1"] for r in runs if r["tree"] == t], ddof=1) for t in trees
               if sum(r["tree"] == t for r in runs) > 1]
    return float(np.mean(spreads)) if spreads else float("nan")


def _vs_quick(r: dict[str, Any]) -> str:
    if "vs_quick" not in r:
        return ""
    ahead = f" ({r['ahead']} of {r['runs']} ahead)" if r["runs"] > r["trees"] else ""
    return f"{r['vs_quick']:+.4f} ± {r['vs_quick_std']:.4f}{ahead}"


def _pm(r: dict[str, Any], m: str, digits: int) -> str:
    if np.isnan(r[m]):
        return "n/a"
    return f"{r[m]:.{digits}f} ± {r[m + '_std']:.{digits}f}"


def markdown(results: list[dict[str, Any]], args: argparse.Namespace,
             spread: float = float("nan")) -> str:
    import torch

    trees = ", ".join(t.label() for t in args.trees)
    seeds = ""
    if args.seeds:
        seeds = (f" Every recipe trained from seeds {', '.join(map(str, args.seeds))} on each "
                 "tree: a tree's figures are the mean over its seeds, and each row is paired "
                 "with quick run by run (same tree, same seed), with the number of runs it is "
                 "ahead in.")
        if not np.isnan(spread):
            seeds += (f" The seed alone moves quick by {spread:.4f} on a tree (std between "
                      "seeds): a gain smaller than that is noise.")
    title = (f"{len(args.trees)} held-out trees (seed, difficulty, framing, style st, 60+ "
             f"overlap o: {trees}), "
             f"{args.persons} training / {args.eval_persons} eval people each; every recipe "
             f"capped at {args.budget:.0f} s of training (trainer.max_time); mean ± std over "
             f"the trees; torch {torch.__version__}, {torch.get_num_threads()} threads. Scores "
             f"on eval/answers.csv.{seeds}")
    rows = [[r["name"], _pm(r, "f1", 4), " / ".join(f"{f:.3f}" for f in r["per_tree"]),
             _vs_quick(r),
             _pm(r, "ceiling", 4), _pm(r, "share", 3),
             _pm(r, "acc", 4), _pm(r, "f1_mask", 3), _pm(r, "f1_gender", 3),
             _pm(r, "f1_age", 3), _pm(r, "rare_60+", 3), _pm(r, "share_60+", 3),
             _pm(r, "rare_male", 3),
             ",".join(map(str, r["epochs"])),
             "" if r["wall"] is None else f"{r['wall']:.0f}"] for r in results]
    return markdown_table(title, COLUMNS, rows)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--held-out-styles", action="store_true",
                   help=f"the trees drawn in styles no recipe was chosen on, with the real 60+ "
                        f"overlap ({HELD_OUT_TREES}); the table goes to "
                        "benchmarks/results/quality_held_out.md")
    p.add_argument("--trees", default=DEFAULT_TREES,
                   help=f"held-out trees, seed:difficulty:framing[:style[:age_overlap]],... "
                        f"(default {DEFAULT_TREES};"
                        " the default tree is seed 0)")
    p.add_argument("--seeds", default=None,
                   help="train every row from each of these seeds on each tree (e.g. 42,43)"
                        " and pair it with quick seed by seed (default: the config's seed)")
    p.add_argument("--persons", type=int, default=600)
    p.add_argument("--eval-persons", type=int, default=150)
    p.add_argument("--budget", type=float, default=300, help="training seconds per recipe")
    p.add_argument("--ablations", action="store_true", help="also quick minus each item")
    p.add_argument("--only", default=None,
                   help="row names to run, separated by commas without a space (names such "
                        "as 'quick, seed 43' hold a comma and a space)")
    p.add_argument("--override", action="append", default=[],
                   help="extra train.py override for every row (repeatable)")
    p.add_argument("--reuse", action="store_true",
                   help="score a row's finished run in --work again instead of retraining it "
                        "(one trained with another config than the row's today is retrained)")
    p.add_argument("--work", default=str(ROOT / "data" / "quality"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "quality.md"))
    return p


def _args(argv: list[str] | None) -> tuple[argparse.Namespace, list[Row]]:
    """The parsed flags, with the trees read and the rows picked by ``--only``."""
    p = _parser()
    args = p.parse_args(argv)
    if args.held_out_styles:
        if args.trees != DEFAULT_TREES:
            p.error("--held-out-styles sets the trees: give it or --trees, not both")
        args.trees = HELD_OUT_TREES
        if args.out == p.get_default("out"):
            args.out = str(ROOT / "benchmarks" / "results" / "quality_held_out.md")
    try:
        args.trees = [Tree.parse(t) for t in args.trees.split(",")]
    except argparse.ArgumentTypeError as e:
        p.error(f"--trees: {e}")
    if args.seeds is not None:
        try:
            args.seeds = [int(x) for x in args.seeds.split(",")]
        except ValueError:
            p.error(f"--seeds: comma-separated whole numbers (e.g. 42,43), got {args.seeds!r}")
        if len(set(args.seeds)) != len(args.seeds):
            p.error(f"--seeds: {args.seeds} names a seed twice")
    rows = RECIPES + (ABLATIONS if args.ablations else [])
    if args.only:
        wanted = set(re.split(r",(?! )", args.only))
        unknown = wanted - {r.name for r in RECIPES + ABLATIONS}
        if unknown:
            p.error(f"--only: no row named {', '.join(map(repr, sorted(unknown)))}; rows: "
                    f"{'; '.join(r.name for r in RECIPES + ABLATIONS)}")
        rows = [r for r in RECIPES + ABLATIONS if r.name in wanted]
        needs = {r.run or r.pseudo_from for r in rows} - {None} - wanted
        if needs:
            p.error(f"--only: these rows need {', '.join(sorted(needs))} too")
    seeded = [r.name for r in rows if any(o.startswith("seed=") for o in r.overrides)]
    seeded += [f"--override {o}" for o in args.override if o.startswith("seed=")]
    if args.seeds and seeded:
        p.error(f"--seeds sets every row's seed; {', '.join(map(repr, seeded))} sets its own:"
                " leave it out (--only) or drop --seeds")
    return args, rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args, rows = _args(argv)
    per_row: dict[str, list[dict[str, Any]]] = {r.name: [] for r in rows}
    for i, tree in enumerate(args.trees):
        root = held_out_tree(tree, args)
        top = tree_ceiling(root)
        for seed in args.seeds or [None]:
            runs: dict[str, Path] = {}
            for row in rows:
                wall = None if row.run else train_row(row, root, args, runs, seed)
                run = runs[row.run] if row.run else runs[row.name]
                res = {"wall": wall, "tree": i, "seed": seed, **score_row(row, run, root),
                       **top}
                res["share"] = _ratio(res["f1"], top["ceiling"])
                res["share_60+"] = _ratio(res["rare_60+"], top["ceiling_60+"])
                per_row[row.name].append(res)
                print(f"{tree.label()}{'' if seed is None else f' seed {seed}'}: {row.name}: "
                      f"eval macro-F1 {res['f1']:.4f} (wall {wall or 0:.0f} s)", flush=True)
    reference = per_row.get("quick")
    results = [summarise(name, runs, reference if name != "quick" else None)
               for name, runs in per_row.items()]
    spread = seed_spread(reference) if reference else float("nan")
    publish(markdown(results, args, spread), args.out)
    return results


if __name__ == "__main__":
    main()
