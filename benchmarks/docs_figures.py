"""Every picture in docs/, made again by one command (``make docs-figures``), so that no picture
is of an older run or older code:

    python -m benchmarks.docs_figures                      # all steps, about 15 min on 2 CPU cores
    python -m benchmarks.docs_figures --steps preview      # one step

Steps, each a command a user can type (run as a fresh process, from the project root):

1. ``default-run``: ``python train.py`` (the default run) -> ``errors.png``,
   ``confusion_matrix.png``, ``learning_curve.png`` and its summary figures;
2. ``preview``: ``python -m maskcls.preview augment=strong`` -> ``preview_augment.png``;
3. ``sweep``: a synthetic tree with 5% injected label errors, a 3-fold ``experiment=quick``
   sweep of two losses on it, ``python -m maskcls.report``, the fold ensemble with
   ``predict.py`` and ``python -m maskcls.label_issues`` -> ``sweep_summary.png``, the sweep's
   tables and ``label_issues.png`` with the finder's hits among the injected errors.

The pictures go to ``docs/figures/``; each step rewrites its block in the docs pages (between
``<!-- docs-figures: NAME -->`` and ``<!-- /docs-figures -->``) with the pictures, the commands
that made them, the date and the commit they ran on.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from benchmarks import run_python

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"(<!-- docs-figures: (?P<name>[\w-]+) -->\n)(?P<body>.*?)"
                   r"(<!-- /docs-figures -->)", re.S)


def commit() -> str:
    """The commit the figures are made on (``+changes`` when the tree differs from it)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


_CODE: list[str] = []  # the commit when the command started: what the figures ran on


def stamp(commands: list[str]) -> str:
    """The line under each block: what made it, when, on which code."""
    shown = "; ".join(f"`{c}`" for c in commands)
    code = _CODE[0] if _CODE else commit()
    return (f"Made by {shown} on {datetime.date.today().isoformat()} at commit {code} "
            "(`make docs-figures` makes it again).")


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the block ``name`` holding ``body``; a page without the block is an
    error (a renamed or removed block must not leave a picture behind unnoticed)."""
    found = False

    def swap(m: re.Match) -> str:
        nonlocal found
        if m["name"] != name:
            return m[0]
        found = True
        return f"{m[1]}{body.strip()}\n{m[4]}"

    out = BLOCK.sub(swap, text)
    if not found:
        raise KeyError(f"no <!-- docs-figures: {name} --> block")
    return out


def write_block(page: str, name: str, body: str) -> None:
    path = DOCS / page
    path.write_text(replace_block(path.read_text(), name, body))
    print(f"rewrote the {name} block of {path}")


def _keep(src: Path, name: str, figures: Path) -> str:
    figures.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, figures / name)
    return f"figures/{name}"


def default_run(work: Path, figures: Path, extra: list[str]) -> None:
    run = work / "default-run"
    shutil.rmtree(run, ignore_errors=True)
    args = ["train.py", f"hydra.run.dir={run}", *extra]
    run_python(*args)
    m = json.loads((run / "metrics.json").read_text())
    pics = {n: _keep(run / n, n, figures)
            for n in ("errors.png", "confusion_matrix.png", "learning_curve.png")}
    val = m["val"]
    tasks = " / ".join(f"{t} {val[f'f1_{t}']:.3f}" for t in ("mask", "gender", "age"))
    body = (f"Best epoch {m['best_epoch']} of 0..{m['epochs'] - 1}: validation macro-F1 "
            f"**{val['f1']:.4f}**, accuracy {val['acc']:.4f}, per-task F1 {tasks}; "
            f"{m['train_images']} training / {m['val_images']} validation images, "
            f"fit {m['fit_seconds']:.0f} s on {m.get('device', 'cpu')}.\n\n"
            f"| `errors.png` | `learning_curve.png` |\n| --- | --- |\n"
            f"| ![errors of the default run]({pics['errors.png']}) | "
            f"![learning curve of the default run]({pics['learning_curve.png']}) |\n\n"
            f"![confusion matrix of the default run]({pics['confusion_matrix.png']})\n\n"
            + stamp([shlex.join(["python", "train.py", *extra])]))
    write_block("analysis.md", "default-run", body)


def preview(work: Path, figures: Path, extra: list[str]) -> None:
    out = work / "preview"
    shutil.rmtree(out, ignore_errors=True)
    args = ["-m", "maskcls.preview", "augment=strong", *extra, "--out", str(out)]
    run_python(*args)
    pic = _keep(out / "preview_augment.png", "preview_augment.png", figures)
    body = (f"![the same images through augment=strong, several draws]({pic})\n\n"
            + stamp([shlex.join(["python", "-m", "maskcls.preview", "augment=strong", *extra])]))
    write_block("analysis.md", "preview", body)


def sweep(work: Path, figures: Path, extra: list[str], persons: int = 200) -> None:
    tree, out = work / "tree", work / "sweep"
    for path in (tree, out):
        shutil.rmtree(path, ignore_errors=True)
    synth = ["-m", "maskcls.synth", "--out", str(tree), "--persons", str(persons),
             "--eval-persons", str(persons // 4), "--seed", "31", "--label-errors", "0.05"]
    train = ["train.py", "-m", "experiment=quick", f"data.root={tree}", "data.synthetic=null",
             "data.n_folds=3", "data.fold=range(3)", "loss=ce,focal", *extra,
             f"hydra.sweep.dir={out}"]
    predict = ["predict.py", f"ckpt={out}", "tta=true"]
    finder = ["-m", "maskcls.label_issues", str(out)]
    for args in (synth, train, predict, finder):
        run_python(*args)
    pics = {n: _keep(out / src, n, figures) for src, n in (
        ("summary.png", "sweep_summary.png"), ("label_issues.png", "label_issues.png"))}
    summary = (out / "summary.md").read_text().strip().replace(str(work), "WORK")
    summary = re.sub(r"^(#+) ", r"###\1 ", summary, flags=re.M)  # headings under the page's
    from benchmarks.quality import score_detail

    score = score_detail(out / "submission.csv", tree)
    ensemble = (f"\n\nThe fold ensemble (`predict.py ckpt=SWEEP tta=true`, all six jobs) on the "
                f"tree's eval set: macro-F1 **{score['f1']:.4f}**, accuracy {score['acc']:.4f}.")
    shown = [shlex.join(["python", *a]).replace(str(work), "WORK") for a in (synth, train)] + \
        ["python predict.py ckpt=WORK/sweep tta=true"]
    write_block("sweeps.md", "sweep", f"{summary}{ensemble}\n\n![sweep summary]"
                f"({pics['sweep_summary.png']})\n\n" + stamp(shown))
    found = pd.read_csv(out / "label_issues.csv")
    injected = pd.read_csv(tree / "label_errors.csv")
    rows = []
    for field in ("age", "gender", "mask"):
        truth = set(_ids(injected.loc[injected["field"] == field, "person_id"]))
        top = found[found["field"] == field].head(len(truth))
        hits = len(truth & set(_ids(top["person_id"])))
        rows.append(f"| {field} | {len(truth)} | {hits} |")
    table = "| field | injected | among the top suspects of that field |\n| --- | --- | --- |\n"
    write_block("analysis.md", "label-issues",
                table + "\n".join(rows) + f"\n\n![the top suspects]({pics['label_issues.png']})"
                "\n\n" + stamp([*shown[:2], "python -m maskcls.label_issues WORK/sweep"]))


def _ids(column: pd.Series) -> list[str]:
    return [str(v).lstrip("0") for v in column]


STEPS: dict[str, Callable[..., None]] = {"default-run": default_run, "preview": preview,
                                          "sweep": sweep}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.docs_figures", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", default=",".join(STEPS),
                   help=f"comma-separated steps (default: all of {', '.join(STEPS)})")
    p.add_argument("--work", default=str(ROOT / "outputs" / "docs-figures"),
                   help="folder for the runs (default: outputs/docs-figures)")
    p.add_argument("--override", action="append", default=[],
                   help="extra train.py override for every run (repeatable; for a quick try)")
    args = p.parse_args(argv)
    steps = [s.strip() for s in args.steps.split(",")]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        p.error(f"--steps: no step {unknown[0]!r}; steps: {', '.join(STEPS)}")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    _CODE[:] = [commit()]
    for step in steps:
        print(f"{step} ...", flush=True)
        STEPS[step](work, DOCS / "figures", args.override)


if __name__ == "__main__":
    sys.exit(main())
