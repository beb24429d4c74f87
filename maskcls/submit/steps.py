"""The steps of ``python -m maskcls.submit``, each skipped when its output is already there."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from maskcls import atomic
from maskcls.errors import ConfigError, MaskclsError, RunFolderError
from maskcls.run import folder as rf

if TYPE_CHECKING:
    from maskcls.config import PredictSettings

TRAIN_PY = rf.PREDICT_PY.with_name("train.py")
CONF = rf.PREDICT_PY.with_name("conf")
RECORD = "submit.json"
LOCK = ".submit.lock"
OOF = "oof.csv"
AUTO = "auto"  # --tta-crop's default: the views the folds' training showed
# Set by the command itself: a user's value would break the split or the folder layout.
OWNED = {"data.fold": "--folds", "data.n_folds": "--folds", "hydra.run.dir": "--out",
         "hydra.sweep.dir": "--out", "paths.output_dir": "--out", "resume": "--out"}


class FoldFailed(MaskclsError):
    """A fold's training ended with an error (``train.py`` printed it)."""


@dataclass
class Plan:
    """What one submission folder is made of; ``submit.json`` records it."""

    out: Path
    folds: int
    overrides: list[str]
    tta: bool = True
    calibrate: bool = True
    tta_crop: float | str | None = AUTO  # a share, AUTO, or None: no crop views

    @property
    def record(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "out"}


def crop_setting(text: str) -> float | str | None:
    """``--tta-crop``'s value: ``auto``, ``none`` or a share in (0, 1)."""
    if text in (AUTO, "none"):
        return None if text == "none" else AUTO
    try:
        share = float(text)
    except ValueError:
        share = float("nan")
    if not 0 < share < 1:
        raise ConfigError(f"--tta-crop {text}: give the crops' share of the height and width "
                          f"in (0, 1), e.g. {rf.CROP_VIEWS}, or auto (the views the folds "
                          "trained with) or none")
    return share


def check_overrides(overrides: Sequence[str], folds: int) -> None:
    """Refuse what would not make one k-fold submission, before anything is trained."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if folds < 2:
        raise ConfigError(f"--folds {folds}: k-fold needs at least 2 folds (5 is usual)")
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if o in ("-m", "--multirun"):
            raise ConfigError(f"{o}: submit trains its folds itself; drop {o}")
        if key in OWNED:
            raise ConfigError(f"{o}: submit sets {key} itself; use {OWNED[key]} instead")
        if key.startswith("hydra."):
            raise ConfigError(f"{o}: submit runs each fold in its own folder under --out; drop "
                              "the hydra.* override")
    from hydra.errors import OverrideParseException

    from maskcls.run.overrides import check_argv

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException:
        parsed = []  # check_argv names the unreadable one
    for override in parsed:
        if override.is_sweep_override():
            raise ConfigError(f"{override.input_line}: one submission trains one configuration;"
                              " compare settings with python train.py -m first, then submit "
                              "the best")
    check_argv(list(overrides), CONF, "train")  # typos: one line, before any data work


def claim(plan: Plan) -> FileLock:
    """``plan.out`` as this submission's folder, locked: new, or started by the same command."""
    out = plan.out
    path = out / RECORD
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except ValueError:
            raise RunFolderError(f"{path} is damaged; give a new --out") from None
        if isinstance(saved, dict):
            # begun before --tta-crop existed: its command, run again, means the default
            saved.setdefault("tta_crop", AUTO)
        if saved != plan.record:
            raise RunFolderError(
                f"--out {out} holds a submission started with other settings ({_describe(saved)}"
                f"); run that command again to continue it, or give a new --out")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunFolderError(f"--out {out} already holds other files; give a new folder (a "
                             "submission never writes over them)")
    out.mkdir(parents=True, exist_ok=True)
    lock = atomic.lock_now(out / LOCK, RunFolderError(
        f"--out {out} is in use by another submit; wait for it to end (or stop it)"))
    if not path.is_file():
        atomic.write_text(path, json.dumps(plan.record, indent=2) + "\n")
    return lock


def _describe(record: dict[str, Any]) -> str:
    return (f"--folds {record.get('folds')} {' '.join(record.get('overrides') or [])}"
            + ("" if record.get("tta", True) else " --no-tta")
            + ("" if record.get("calibrate", True) else " --no-calibrate")
            + ("" if record.get("tta_crop", AUTO) == AUTO
               else f" --tta-crop {record.get('tta_crop') or 'none'}")).strip()


def fold_command(plan: Plan, k: int) -> list[str] | None:
    """The ``train.py`` command that finishes fold ``k``: None when it is done, a resume when
    it has a ``last.ckpt``, else a fresh run (a folder it left without a checkpoint trained
    nothing and is cleared)."""
    job = plan.out / str(k)
    if (job / rf.METRICS_JSON).is_file():
        return None
    if (job / rf.LAST_CKPT).is_file():
        return [str(TRAIN_PY), f"resume={job}"]
    if job.exists():
        atomic.lock_now(job / rf.LOCK, RunFolderError(
            f"{job} is in use by a running process; wait for it to end")).release()
        shutil.rmtree(job)
    return [str(TRAIN_PY), f"hydra.run.dir={job}", *fold_overrides(plan, k)]


def fold_overrides(plan: Plan, k: int) -> list[str]:
    return [f"data.n_folds={plan.folds}", f"data.fold={k}", *plan.overrides]


def _kept(job: Path) -> bool:
    """A fold that is finished, or resumes from its checkpoint."""
    return (job / rf.METRICS_JSON).is_file() or (job / rf.LAST_CKPT).is_file()


def check_kept_folds(plan: Plan) -> None:
    """Before a fold trains from fresh weights, every kept fold must have been trained with the
    config the same overrides compose now: after ``conf/`` changed (an experiment moved to
    another backbone, say), the ensemble would mix two recipes. Folds that all resume keep
    their own recorded config, so nothing is checked then."""
    from maskcls.run.same_config import differences

    if all(_kept(plan.out / str(k)) for k in range(plan.folds)):
        return
    for k in range(plan.folds):
        job = plan.out / str(k)
        if not _kept(job):
            continue
        diff = differences(job, fold_overrides(plan, k))
        if diff is None:
            raise RunFolderError(f"{job}: fold {k + 1} records no readable {rf.CONFIG}, so it "
                                 "cannot be checked against the other folds; give a new --out")
        if diff:
            shown = "; ".join(diff[:3]) + (f" (and {len(diff) - 3} more)" if len(diff) > 3
                                           else "")
            raise RunFolderError(
                f"{job}: fold {k + 1} was trained with another config than these overrides "
                f"compose now ({shown}): conf/ changed since, and the ensemble would mix two "
                "recipes. Give a new --out, or restore that config to finish this submission")


def run_child(args: Sequence[str]) -> int:
    """Run ``python ARGS`` to its end. Ctrl-C reaches the child too (same terminal), and a
    SIGTERM is passed on, so it saves its state; this process waits for it either way."""
    proc = subprocess.Popen([sys.executable, *args])
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)


def train_folds(plan: Plan) -> None:
    check_kept_folds(plan)
    for k in range(plan.folds):
        cmd = fold_command(plan, k)
        job = plan.out / str(k)
        if cmd is None:
            print(f"fold {k + 1}/{plan.folds}: done ({job})", flush=True)
            continue
        what = "resuming" if cmd[1].startswith("resume=") else "training"
        print(f"fold {k + 1}/{plan.folds}: {what} in {job}", flush=True)
        rc = run_child(cmd)
        if rc in (130, 143, -signal.SIGINT, -signal.SIGTERM):
            raise FoldFailed(f"fold {k + 1} was interrupted; run the same command again to "
                             "continue (finished folds are kept, this one resumes)")
        if rc != 0:
            raise FoldFailed(f"fold {k + 1} stopped with an error (above; details in "
                             f"{job}); fix it and run the same command again: finished folds "
                             "are kept")


def out_of_fold(plan: Plan) -> dict[str, Any]:
    """The sweep report, ``oof.csv`` and ``calibration.json`` fitted on it."""
    from maskcls.inference import calibration
    from maskcls.label_issues import PROB_COLUMNS, load_oof
    from maskcls.report import write_report

    write_report(plan.out)
    oof = load_oof([plan.out])
    probs = oof[PROB_COLUMNS].to_numpy()
    table = oof[["path", "person_id", "label"]].assign(pred=probs.argmax(1))
    atomic.write_csv(table.join(oof[PROB_COLUMNS]), plan.out / OOF, float_format="%.6f")
    fitted = calibration.fit(probs, oof["label"].to_numpy(), groups=oof["person_id"].to_numpy())
    if plan.calibrate:
        calibration.save(fitted, plan.out / rf.CALIBRATION)
    return {"images": len(oof), "people": int(oof["folder"].nunique()),
            "f1": fitted["f1_before"], "f1_calibrated": fitted["f1_after"],
            "share": fitted["share"]}


def predict_settings(plan: Plan) -> PredictSettings:
    """``predict.py``'s settings for the fold ensemble. ``auto`` leaves ``tta_crop`` unset, so
    prediction takes the views the folds trained on (``Source.crop_views``); none is 0."""
    from maskcls.config import PredictSettings

    crop = None if plan.tta_crop == AUTO else plan.tta_crop or 0
    return PredictSettings(ckpt=str(plan.out), tta=plan.tta, calibrate=plan.calibrate,
                           tta_crop=crop, output=str(plan.out / rf.SUBMISSION))


def predict(plan: Plan) -> dict[str, Any]:
    from maskcls.inference import predict as predict_eval

    return predict_eval(predict_settings(plan))
