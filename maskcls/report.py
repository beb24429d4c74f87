"""Sweep reports: one table for a multirun folder, with cross-validation rows for k-fold jobs.

``python -m maskcls.report DIR`` (and, automatically, the end of every ``train.py -m`` sweep)
writes into DIR:

* ``summary.csv`` / ``summary.md``: one row per job, the overrides that vary between jobs,
  validation macro-F1, accuracy, per-task F1, best epoch, wall time and status, sorted by
  macro-F1 with the best row marked; failed, damaged and unfinished jobs are listed too.
* ``summary_cv.csv`` (k-fold sweeps): one row per configuration (the overrides other than
  ``data.fold``): folds done, mean +- std of macro-F1 and accuracy, and the **out-of-fold**
  macro-F1 / accuracy over every fold's saved validation predictions.
* ``summary.png``: the same at a glance; ``oof_confusion_<n>.png`` per CV configuration,
  titled by its settings; ``summary_epochs.png``: every job's validation macro-F1 per epoch.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from maskcls.analysis.plots import (
    confusion_matrix_png,
    settings_label,
    sweep_epochs_png,
    sweep_summary_png,
)
from maskcls.analysis.tables import markdown_table
from maskcls.errors import RunFolderError, one_line_errors
from maskcls.run import folder as rf
from maskcls.run.logs import quiet_libraries

FOLD_KEY = "data.fold"
METRIC_COLUMNS = ["f1", "acc", "f1_mask", "f1_gender", "f1_age"]


def _overrides(job: Path) -> dict[str, str]:
    path = job / ".hydra" / "overrides.yaml"
    items = yaml.safe_load(path.read_text()) if path.exists() else []
    out = {}
    for item in items or []:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def _read_json(path: Path) -> dict[str, Any]:
    """A job's JSON record, or {} when it is damaged."""
    try:
        value = json.loads(path.read_text())
    except (ValueError, OSError):
        return {}
    return value if isinstance(value, dict) else {}


def job_table(sweep_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """One row per job and the override keys that vary between jobs."""
    rows = []
    for job in rf.find_jobs(sweep_dir):
        row: dict[str, Any] = {"job": job.name, "overrides": _overrides(job)}
        metrics_path, failure_path = job / rf.METRICS_JSON, job / rf.FAILURE
        if metrics_path.exists():
            m = _read_json(metrics_path)
            if isinstance(m.get("val"), dict) and isinstance(m["val"].get("f1"), float | int):
                row.update({k: m["val"].get(k) for k in METRIC_COLUMNS})
                row.update(best_epoch=m.get("best_epoch"), wall_s=m.get("wall_seconds"),
                           status="done")
            else:  # cut short (a full disk, a copy interrupted) or edited by hand
                row.update(status="damaged", error=f"{metrics_path.name} cannot be read or "
                                                   "holds no val/f1")
        elif failure_path.exists():
            f = _read_json(failure_path)
            message = " ".join(f"{f.get('type', '?')}: {f.get('message', '')}".split())
            row.update(status="failed", error=message[:200])
        else:
            row.update(status="unfinished")
        rows.append(row)
    if not rows:
        return pd.DataFrame(), []
    keys = sorted({k for r in rows for k in r["overrides"]})
    varying = [k for k in keys if len({r["overrides"].get(k) for r in rows}) > 1]
    df = pd.DataFrame(rows)
    for k in varying:
        df[k] = [r["overrides"].get(k, "") for r in rows]
    for c in [*METRIC_COLUMNS, "best_epoch", "wall_s", "error"]:
        if c not in df:
            df[c] = np.nan
    return df, varying


def cv_table(sweep_dir: Path, jobs: pd.DataFrame, varying: Sequence[str]) -> pd.DataFrame:
    """One row per configuration swept across ``data.fold``, with out-of-fold scores."""
    if jobs.empty or FOLD_KEY not in varying:
        return pd.DataFrame()
    config_keys = [k for k in varying if k != FOLD_KEY]
    rows = []
    groups = jobs.groupby(config_keys, sort=False, dropna=False) if config_keys else [((), jobs)]
    for n, (key, group) in enumerate(groups):
        done = group[group["status"] == "done"]
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(config_keys, key, strict=True))
        row.update(config=n, folds_done=len(done), folds=len(group),
                   f1_mean=done["f1"].mean(), f1_std=done["f1"].std(ddof=0),
                   acc_mean=done["acc"].mean(), acc_std=done["acc"].std(ddof=0))
        oof = out_of_fold_predictions([sweep_dir / j for j in done["job"]])
        if len(oof):
            from maskcls.model.metrics import score  # torch: here, so --help is instant

            s = score(oof["pred"].to_numpy(), oof["label"].to_numpy(), detail=True)
            row.update(oof_f1=s["f1"], oof_acc=s["acc"], oof_images=len(oof))
            settings = settings_label(dict(zip(config_keys, key, strict=True)), config_keys)
            confusion_matrix_png(s["confusion_matrix"], sweep_dir / f"oof_confusion_{n}.png",
                                 title=f"out-of-fold confusion, {settings or 'all folds'} "
                                       f"(macro-F1 {s['f1']:.3f})")
        rows.append(row)
    return pd.DataFrame(rows).sort_values("oof_f1" if "oof_f1" in rows[0] else "f1_mean",
                                          ascending=False, na_position="last")


def out_of_fold_predictions(job_dirs: Sequence[Path]) -> pd.DataFrame:
    """Every fold's validation predictions, stacked. Each image must appear once."""
    parts = [pd.read_csv(d / rf.VAL_PREDICTIONS, usecols=["path", "label", "pred"])
             for d in job_dirs if (d / rf.VAL_PREDICTIONS).exists()]
    if not parts:
        return pd.DataFrame(columns=["path", "label", "pred"])
    oof = pd.concat(parts, ignore_index=True)
    dup = oof["path"].duplicated()
    if dup.any():
        raise RunFolderError(f"{dup.sum()} image(s) are in the validation set of more than one "
                             f"fold (e.g. {oof.loc[dup, 'path'].iloc[0]}): these jobs are not "
                             "the folds of one split")
    return oof


def _cell(col: str, v: Any) -> str:
    if isinstance(v, float | np.floating):
        if np.isnan(v):
            return ""
        if "f1" in col or "acc" in col:
            return f"{v:.4f}"
        return f"{int(v)}" if float(v).is_integer() else f"{v:.1f}"
    return str(v)


def write_report(sweep_dir: str | Path) -> dict[str, Path]:
    """Write the summary files into ``sweep_dir``; works on a half-finished sweep."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise RunFolderError(f"{sweep_dir} is not a folder; give a multirun folder such as "
                             "outputs/multirun/<date>/<time>")
    jobs, varying = job_table(sweep_dir)
    if jobs.empty:
        raise RunFolderError(f"{sweep_dir}: no job folders (with .hydra/ or config.yaml) "
                             "found; is it a multirun folder?")
    cols = ["job", *varying, "status", *METRIC_COLUMNS, "best_epoch", "wall_s", "error"]
    table = jobs[cols].sort_values("f1", ascending=False, na_position="last")
    table.insert(0, "best", "")
    if table["f1"].notna().any():
        table.iloc[0, 0] = "*"
    table = table.rename(columns={"f1": "macro_f1"})
    out = {"csv": sweep_dir / "summary.csv", "md": sweep_dir / "summary.md",
           "png": sweep_dir / "summary.png"}
    table.to_csv(out["csv"], index=False)
    cv = cv_table(sweep_dir, jobs, varying)
    counts = jobs["status"].value_counts()
    md = [f"# Sweep {sweep_dir}", "",
          f"{len(jobs)} job(s): " + ", ".join(f"{v} {k}" for k, v in counts.items())
          + ". Sorted by validation macro-F1; `*` marks the best.", "",
          markdown_table(table.drop(columns=["error"] if table["error"].isna().all() else []),
                         _cell)]
    if not cv.empty:
        out["cv_csv"] = sweep_dir / "summary_cv.csv"
        cv.to_csv(out["cv_csv"], index=False)
        md += ["", "## Cross-validation", "",
               "Mean +- std over folds, and out-of-fold (OOF) scores over every fold's "
               "validation predictions.", "", markdown_table(cv, _cell)]
    out["md"].write_text("\n".join(md) + "\n")
    sweep_summary_png(table, cv, [k for k in varying], FOLD_KEY, out["png"])
    curves = {_label(r, varying): sweep_dir / str(r["job"]) / rf.METRICS_EPOCHS
              for _, r in jobs.iterrows()}
    if sweep_epochs_png({k: v for k, v in curves.items() if v.exists()},
                        sweep_dir / "summary_epochs.png"):
        out["epochs_png"] = sweep_dir / "summary_epochs.png"
    return out


def _label(row: pd.Series, varying: Sequence[str]) -> str:
    settings = settings_label(row, varying)
    return f"job {row['job']}" + (f": {settings}" if settings else "")


class SweepReport(Callback):
    """Hydra callback: write the report when a multirun ends (``conf/hydra/default.yaml``),
    then make the sweep exit non-zero if any job failed, so scripts and schedulers see it
    (``allow_failures=true`` keeps exit code 0)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A sweep never writes into another sweep's folder (its jobs would refuse their
        folders one by one, and the report would mix two sweeps)."""
        # before the sweeper starts (Optuna announces its study)
        quiet_libraries(optuna="optuna" in str(config.hydra.sweeper.get("_target_", "")))
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir() and rf.find_jobs(sweep_dir):
            raise SystemExit(f"error: hydra.sweep.dir={sweep_dir} already holds another sweep's "
                             "jobs; a sweep never writes over another. Choose a new "
                             "hydra.sweep.dir, or leave it to the default (a new time stamp).")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        files = write_report(sweep_dir)
        print(f"sweep report: {files['md']}\n{files['md'].read_text()}", flush=True)
        jobs, _ = job_table(sweep_dir)
        failed = jobs.loc[jobs["status"].isin(["failed", "damaged"]), "job"].tolist()
        if failed and not config.get("allow_failures", False):
            raise SystemExit(f"error: {len(failed)} of {len(jobs)} job(s) failed (job(s) "
                             f"{', '.join(map(str, failed))}; each folder's failure.json says "
                             f"why). The report is in {files['md']}. Pass allow_failures=true "
                             "to exit 0 when some jobs fail.")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m maskcls.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep_dir", help="a multirun folder, e.g. outputs/multirun/<date>/<time>")
    args = p.parse_args(argv)
    with one_line_errors():
        files = write_report(args.sweep_dir)
    print(files["md"].read_text())
    print("wrote " + ", ".join(str(f) for f in files.values()))


if __name__ == "__main__":
    main()
