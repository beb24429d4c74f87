"""The run folder: its layout, who may write into it, and how a run continues in it.

Every file name of a run folder is spelled here once. A run claims a folder that is new (or
holds only what Hydra wrote for this very run); a run refused before it began removes what it
created and nothing else; ``resume=`` continues a run in its own folder, every output path
derived from that folder (a copied run folder resumes into the copy, never the original).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock
from omegaconf import DictConfig, ListConfig, OmegaConf

from maskcls import atomic
from maskcls.errors import ConfigError, RunFolderError
from maskcls.run import received

log = logging.getLogger(__name__)

# The layout of a run folder.
CONFIG = "config.yaml"
CHECKPOINTS = "checkpoints"
LAST_CKPT = f"{CHECKPOINTS}/last.ckpt"
BEST_CKPT = f"{CHECKPOINTS}/best.ckpt"
METRICS_JSON = "metrics.json"
METRICS_CSV = "metrics.csv"
METRICS_EPOCHS = "metrics_epochs.csv"
METRICS_BEFORE_RESUME = "metrics.before_resume.csv"
VAL_PREDICTIONS = "val_predictions.csv"
CONFUSION_PNG = "confusion_matrix.png"
ERRORS_PNG = "errors.png"
LEARNING_CURVE_PNG = "learning_curve.png"
CALIBRATION = "calibration.json"
TRACKERS = "trackers.json"
TRAIN_LOG = "train.log"
FAILURE = "failure.json"
SUBMISSION = "submission.csv"
LOCK = ".run.lock"
HYDRA_DIR = ".hydra"
# In a sweep folder: jobs a SIGTERM left unfinished or never started.
INTERRUPTED = "interrupted.json"
# A sweep folder's report (``maskcls.report``) and Hydra's record of the sweep.
SWEEP_FILES = ("summary.csv", "summary.md", "summary.png", "summary_cv.csv",
               "summary_epochs.png", "multirun.yaml", INTERRUPTED)

RUN_FILES = (BEST_CKPT, LAST_CKPT, METRICS_JSON, METRICS_CSV, METRICS_EPOCHS, CONFUSION_PNG,
             ERRORS_PNG, LEARNING_CURVE_PNG, VAL_PREDICTIONS, CALIBRATION, CONFIG, TRACKERS,
             TRAIN_LOG)

# What a resumed run may change: where and how fast it runs, how long it trains, and where its
# inputs now lie (data and box files moved with the same content). Anything else (data, model,
# loss, optimiser, schedule) would silently make it another experiment.
RESUME_OVERRIDABLE = ("trainer.max_epochs", "trainer.accelerator", "trainer.devices",
                      "trainer.num_nodes", "trainer.strategy", "data.num_workers",
                      "data.cache", "data.cache_dir", "data.verify", "data.root",
                      "data.face_boxes", "callbacks.progress_bar.refresh_rate",
                      "paths.data_dir")


PREDICT_PY = Path(__file__).resolve().parents[2] / "predict.py"
# the predict.py tta_crop a model trained with zoom or shift is predicted with (quick's; the
# summary's next: line): 0.9 of the height and width, within the zoom and shift it saw
CROP_VIEWS = 0.9


def predict_command(*overrides: str) -> str:
    """A ``predict.py`` command line that runs as printed from any working folder (with this
    Python: the one whose environment has maskcls installed)."""
    return " ".join([shlex.quote(sys.executable), shlex.quote(str(PREDICT_PY)),
                     *map(shlex.quote, overrides)])


def is_run_folder(path: Path) -> bool:
    return (path / CONFIG).is_file()


def job_order(name: str) -> tuple[bool, int, str]:
    """The sort key of a sweep's job folders: job numbers in order, other names after."""
    return (not name.isdigit(), int(name) if name.isdigit() else 0, name)


def find_jobs(sweep_dir: Path) -> list[Path]:
    """Job folders of a sweep, in job-number order."""
    jobs = [d for d in sweep_dir.iterdir()
            if d.is_dir() and ((d / HYDRA_DIR).is_dir() or is_run_folder(d))]
    return sorted(jobs, key=lambda d: job_order(d.name))


# ------------------------------------------------------------------------------ claiming
def claim(out: Path, config_yaml: str, resuming: bool) -> FileLock:
    """Make ``out`` this run's and return its lock, held (release it when the run ends).

    The folder must be new (or hold only Hydra's record of this run and its log) unless the
    run resumes in it, and no running process may hold it. ``config.yaml`` is created only if
    it does not exist, in one atomic step, so of two runs handed the same folder exactly one
    goes on."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK | os.X_OK):
            raise PermissionError
    except PermissionError:
        raise RunFolderError(f"run folder {out} is not writable; fix its permissions, or copy "
                             "the run somewhere you can write and resume the copy") from None
    lock = atomic.lock_now(out / LOCK, RunFolderError(
        f"run folder {out} is in use by a running process; wait for it to end (or stop it) "
        "before resuming it or writing there"))
    try:
        if resuming:
            atomic.write_text(out / CONFIG, config_yaml)
            return lock
        others = sorted(p.name for p in out.iterdir()
                        if p.name not in (HYDRA_DIR, LOCK) and not p.name.endswith(".log"))
        if others:
            whose = "another run's files" if is_run_folder(out) else "other files"
            raise RunFolderError(
                f"run folder {out} already holds {whose} ({', '.join(others[:5])}); a run "
                "never writes over them. Choose a new hydra.run.dir (or paths.output_dir)"
                + (f", or continue that run with resume={out}." if is_run_folder(out) else "."))
        try:
            atomic.write_text(out / CONFIG, config_yaml, exclusive=True)
        except FileExistsError:
            raise RunFolderError(f"run folder {out} was claimed by another run started at the "
                                 "same time; start this one again (it gets a new folder)"
                                 ) from None
    except BaseException:
        lock.release()
        raise
    return lock


def discard_unstarted(out: Path, since: float) -> None:
    """A run refused before it trained (a config or data error): remove what it created in
    ``out`` (Hydra's record, its log, its lock and config, files of the last ``since``
    seconds) and the folder itself if that leaves it empty. Anything older, another run's or
    the user's own files, is left as it was; a folder with a trained epoch is kept."""
    if not out.is_dir() or (out / CHECKPOINTS).exists():
        return
    for handler in list(logging.root.handlers):  # the log file is open: close it first
        if Path(getattr(handler, "baseFilename", "/")).parent == out.resolve():
            logging.root.removeHandler(handler)
            handler.close()
    created = [out / HYDRA_DIR, *out.glob("*.log"), out / LOCK, out / CONFIG,
               out / TRACKERS, out / METRICS_CSV]
    for path in created:
        try:
            if path.is_dir() and not path.is_symlink():
                if all(p.stat().st_mtime >= since for p in path.rglob("*")):
                    shutil.rmtree(path)
            elif path.exists() and path.stat().st_mtime >= since:
                path.unlink()
        except OSError:
            continue
    with contextlib.suppress(OSError):  # not empty: it holds files this run did not make
        out.rmdir()
        # the folders Hydra made above it for this run alone (outputs/<date>/, outputs/):
        # up to the first that holds anything else, never the working folder
        for parent in out.absolute().parents:
            if parent == Path.cwd().absolute() or parent.stat().st_mtime < since:
                break
            parent.rmdir()


# ------------------------------------------------------------------------------ resuming
def resume_config(run_dir: str | Path, overrides: Sequence[str] = (),
                  given: DictConfig | None = None) -> DictConfig:
    """The saved config of ``run_dir``, set to continue from its ``last.ckpt`` in place.

    Every path of the saved config that lay inside the run's original folder is moved to
    ``run_dir`` (a run folder may have been copied or moved). ``overrides`` (``key=value`` from
    the command line) must be in ``RESUME_OVERRIDABLE``; their values are taken from
    ``given``, the config Hydra composed with them."""
    run_dir = Path(run_dir).expanduser().absolute()
    saved, last = run_dir / CONFIG, run_dir / LAST_CKPT
    for needed in (saved, last):
        if not needed.exists():
            raise RunFolderError(f"resume={run_dir}: {needed} does not exist; give the run "
                                 "folder of a run that saved at least one epoch")
    cfg = received.load_config(saved, f"resume={run_dir}")
    needed_keys = ("data", "model", "trainer", "paths", "seed")
    if any(k not in cfg for k in needed_keys):
        raise RunFolderError(f"resume={run_dir}: {saved} is empty or partial (needs "
                             f"{', '.join(needed_keys)}); it is not a maskcls run config")
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    refused = [k for k in keys if k not in RESUME_OVERRIDABLE]
    if refused:
        raise ConfigError(
            f"resume={run_dir} continues the saved experiment; {', '.join(refused)} cannot be "
            f"changed on resume (allowed: {', '.join(RESUME_OVERRIDABLE)}). Start a new run "
            "with ckpt_path=<run>/checkpoints/last.ckpt to change it.")
    original = OmegaConf.select(cfg, "paths.output_dir", default=None)
    if original and Path(str(original)) != run_dir:
        _move_paths(cfg, str(original), str(run_dir))
    for key in keys:
        OmegaConf.update(cfg, key, OmegaConf.select(given, key), force_add=True)
        log.info("resume: %s=%s", key, OmegaConf.select(given, key))
    cfg.ckpt_path = str(last)
    cfg.paths.output_dir = str(run_dir)
    cfg.resume = None
    received.check_outputs_inside(cfg, run_dir, str(saved))
    return cfg


def rehomed(value: str, places: dict[str, str]) -> str:
    """``value`` with the longest folder of ``places`` it is, or lies inside, replaced by that
    folder's new name (a run folder inside a data folder takes the run's); else unchanged."""
    for old in sorted(places, key=len, reverse=True):
        base = old.rstrip("/")
        if value == old or value.startswith(base + "/"):
            return places[old] + value[len(base):]
    return value


def _move_paths(node: Any, old: str, new: str) -> None:
    """Rewrite, in place, every string of ``node`` that is ``old`` or a path inside it."""
    items = node.items() if isinstance(node, DictConfig) else enumerate(node)
    for key, value in list(items):
        if isinstance(value, DictConfig | ListConfig):
            _move_paths(value, old, new)
        elif isinstance(value, str):
            node[key] = rehomed(value, {old: new})


# ---------------------------------------------------------------------- metrics.csv merge
def earlier_metrics(out: Path, done_steps: int) -> tuple[pd.DataFrame, int] | None:
    """Before resuming in the same folder: the logged rows of the ``done_steps`` steps the
    checkpoint holds (Lightning's CSV logger starts metrics.csv afresh). Kept beside it until
    merged back."""
    metrics_csv = out / METRICS_CSV
    if not metrics_csv.exists():
        return None
    rows = _read_csv_text(metrics_csv)
    # every row has a step (learning-rate rows have no epoch); the rows logged at the
    # checkpoint's last step belong to the epoch that ended there
    rows = rows[rows["step"].astype(int) < done_steps] if "step" in rows else rows.iloc[0:0]
    rows.to_csv(out / METRICS_BEFORE_RESUME, index=False)
    return rows, done_steps


def _read_csv_text(path: Path) -> pd.DataFrame:
    """Cells as the logger wrote them (no float or NaN round trip), so a merged file is
    byte-for-byte what one uninterrupted run writes."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def merge_metrics_csv(out: Path, earlier: pd.DataFrame, done_steps: int) -> None:
    path = out / METRICS_CSV
    new = _read_csv_text(path) if path.exists() else pd.DataFrame({"step": []})
    new = new[new["step"].astype(int) >= done_steps]
    merged = pd.concat([earlier, new], ignore_index=True).fillna("")
    atomic.write_csv(merged[sorted(merged.columns)], path)  # the logger's own column order
    (out / METRICS_BEFORE_RESUME).unlink(missing_ok=True)

