"""What ``train.py`` does, importable so tests and sweeps reach it: check the config, build
data / model / trainer from it, fit, evaluate the best checkpoint, write the run folder."""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import timm
import torch
from filelock import FileLock, Timeout
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from maskcls import atomic, calibration, labels, trackers
from maskcls.checkpoints import SafeCheckpointIO, check_resumable
from maskcls.config_checks import check_accelerator, check_values
from maskcls.data.datamodule import MaskDataModule
from maskcls.errors import ConfigError, MaskclsError, RunFolderError
from maskcls.logs import quiet_libraries
from maskcls.model.losses import TaskLoss
from maskcls.model.metrics import classes_scored
from maskcls.model.module import (
    MaskClassifier,
    check_head,
    check_pretrained_file,
    check_schedule,
    create_backbone,
)
from maskcls.plots import confusion_matrix_png, learning_curve_png

log = logging.getLogger(__name__)


def _build(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, re-raising the class's own error (which names the key and
    the fix) instead of Hydra's wrapper around it."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        if e.__cause__ is not None:
            raise e.__cause__ from None
        raise


def check_config(cfg: DictConfig) -> tuple[MaskDataModule, int | None]:
    """Catch configuration mistakes before any data is read or model is built. Returns the
    datamodule, constructed (its settings checked) but not set up, and the global step of
    ``ckpt_path`` (None without one): the checkpoint is read once, here."""
    check_values(cfg)
    check_accelerator(cfg.trainer.get("accelerator"), cfg.trainer.get("devices", 1))
    trackers.check_loggers(cfg)
    name = cfg.model.backbone
    if not timm.is_model(name):
        create_backbone(name)  # raises the error with suggestions
    # Constructing the datamodule reads no data: it checks its settings (image size, split,
    # sampling, cache, normalisation). The loss is built for real once the class counts are
    # known; this trial build checks its parameters now.
    dm: MaskDataModule = _build(cfg.data, _convert_="all")
    check_head(cfg.model.get("head", "single"))
    if cfg.model.get("pretrained_file"):
        check_pretrained_file(cfg.model.pretrained_file)
    build_loss(cfg, [1] * labels.NUM_CLASSES)
    build_callbacks(cfg)  # their own checks (e.g. the EMA decay); they hold no data yet
    check_schedule(instantiate(cfg.scheduler, _convert_="all") if cfg.get("scheduler") else None)
    _check_data_root(cfg)
    if not cfg.get("ckpt_path"):
        return dm, None
    ckpt = check_resumable(cfg.ckpt_path)
    done = int(ckpt["epoch"]) + 1
    if cfg.trainer.max_epochs < done:
        raise ConfigError(f"trainer.max_epochs={cfg.trainer.max_epochs}, but {cfg.ckpt_path} "
                          f"has already trained {done} epoch(s); give trainer.max_epochs "
                          f">= {done}")
    return dm, int(ckpt["global_step"])


def _check_data_root(cfg: DictConfig) -> None:
    """The data must exist, except the synthetic tree at its default location, which is
    generated on first use. A mistyped root is never filled with generated data."""
    root = Path(str(cfg.data.root)).expanduser()
    if (root / "train" / "images").is_dir():
        return
    default = cfg.get("paths", {}).get("synthetic_dir")
    if cfg.data.get("synthetic") and default is not None and \
            root.absolute() == Path(str(default)).expanduser().absolute():
        return
    hint = ("; only the default synthetic location "
            f"(paths.synthetic_dir={default}) is generated on first use. Generate a tree "
            f"elsewhere with `python -m maskcls.synth --out {root}`"
            if cfg.data.get("synthetic") else "")
    raise ConfigError(f"data.root={str(cfg.data.root)!r}: {root / 'train' / 'images'} does not "
                      f"exist. Point data.root at the folder holding train/ and eval/{hint}.")


def build(cfg: DictConfig, dm: MaskDataModule | None = None
          ) -> tuple[MaskDataModule, MaskClassifier]:
    """Set up the data (``dm``, or one built from ``cfg.data``) and build the model."""
    dm = dm if dm is not None else _build(cfg.data, _convert_="all")
    dm.prepare_data()
    dm.setup("fit")
    loss = build_loss(cfg, dm.class_counts)
    model: MaskClassifier = _build(
        cfg.model, loss=loss, optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler, _convert_="all"))
    _check_input_size(model, dm.pipeline.image_size)
    # Lightning's model summary measures FLOPs and layer sizes on this (else it shows 0)
    model.example_input_array = torch.zeros(1, 3, *dm.pipeline.image_size, dtype=torch.uint8)
    return dm, model


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    return [_build(c) for c in (cfg.get("callbacks") or {}).values()]


def build_loss(cfg: DictConfig, class_counts: list[int]) -> torch.nn.Module:
    """``conf/loss`` for the configured head: one 18-class loss, or one per task."""
    def make(counts: list[int]) -> torch.nn.Module:
        return _build(cfg.loss, class_counts=counts)

    if cfg.model.get("head", "single") == "multi":
        weights = cfg.model.get("task_weights")
        return TaskLoss(make, class_counts,
                        OmegaConf.to_container(weights) if weights is not None else None)
    return make(class_counts)


def _check_input_size(model: MaskClassifier, image_size: tuple[int, int]) -> None:
    """One image through the network now, so a size the backbone cannot take fails here
    with a message rather than after the data is loaded into the first training step."""
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, *image_size))
    except RuntimeError as e:
        raise ConfigError(f"data.image_size={list(image_size)} is too small for "
                         f"model.backbone={model.hparams.backbone} ({str(e).splitlines()[0]}); "
                         "use a larger data.image_size") from None
    finally:
        model.train(was_training)


def run(cfg: DictConfig) -> float:
    """``train.py``'s job. In a sweep, a failing job (a bad value, out of memory) is recorded
    in its folder as ``failure.json`` and returns NaN, so the other jobs still run and the
    sweep report lists it as failed."""
    if not _in_multirun():
        try:
            return train(resume_config(cfg.resume, _command_line_overrides(), cfg)
                         if cfg.get("resume") else cfg)
        except MaskclsError:
            if HydraConfig.initialized():
                discard_unstarted_run(Path(HydraConfig.get().runtime.output_dir))
            raise
    if cfg.get("resume"):
        cfg = resume_config(cfg.resume, _command_line_overrides(), cfg)
    try:
        return train(cfg)
    except Exception as e:  # noqa: BLE001 - any job failure is recorded, none stops the sweep
        out = Path(cfg.paths.output_dir)
        log.error("job failed (%s: %s); the sweep goes on.", type(e).__name__, e)
        if isinstance(e, RunFolderError):  # the folder is another run's: leave it alone
            return float("nan")
        out.mkdir(parents=True, exist_ok=True)
        failure = {"type": type(e).__name__, "message": str(e),
                   "traceback": traceback.format_exc()}
        atomic.write_text(out / "failure.json", json.dumps(failure, indent=2))
        log.error("details: %s", out / "failure.json")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return float("nan")


# What a resumed run may change: where and how fast it runs, and how long it trains. Anything
# else (data, model, loss, optimiser, schedule) would silently make it another experiment.
RESUME_OVERRIDABLE = ("trainer.max_epochs", "trainer.accelerator", "trainer.devices",
                      "trainer.num_nodes", "trainer.strategy", "data.num_workers",
                      "data.cache", "data.cache_dir", "data.verify", "data.root",
                      "callbacks.progress_bar.refresh_rate", "paths.data_dir")


def _command_line_overrides() -> list[str]:
    if not HydraConfig.initialized():
        return []
    return [o for o in HydraConfig.get().overrides.task if not o.startswith("resume=")]


def resume_config(run_dir: str | Path, overrides: Sequence[str] = (),
                  given: DictConfig | None = None) -> DictConfig:
    """The saved config of ``run_dir``, set to continue from its ``last.ckpt`` in place.

    ``overrides`` (``key=value`` from the command line) must be in ``RESUME_OVERRIDABLE``; their
    values are taken from ``given``, the config Hydra composed with them."""
    run_dir = Path(run_dir).expanduser()
    saved, last = run_dir / "config.yaml", run_dir / "checkpoints" / "last.ckpt"
    for needed in (saved, last):
        if not needed.exists():
            raise RunFolderError(f"resume={run_dir}: {needed} does not exist; give the run "
                                 "folder of a run that saved at least one epoch")
    try:
        cfg = OmegaConf.load(saved)
    except Exception as e:  # noqa: BLE001 - any parse failure means the file is damaged
        raise RunFolderError(f"resume={run_dir}: {saved} cannot be read ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:200]}); it may have been cut short. "
                             "Restore it from the run's .hydra/ copy.") from None
    needed_keys = ("data", "model", "trainer", "paths", "seed")
    if not isinstance(cfg, DictConfig) or any(k not in cfg for k in needed_keys):
        raise RunFolderError(f"resume={run_dir}: {saved} is empty or partial (needs "
                             f"{', '.join(needed_keys)}); it is not a maskcls run config")
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    refused = [k for k in keys if k not in RESUME_OVERRIDABLE]
    if refused:
        raise ConfigError(
            f"resume={run_dir} continues the saved experiment; {', '.join(refused)} cannot be "
            f"changed on resume (allowed: {', '.join(RESUME_OVERRIDABLE)}). Start a new run "
            "with ckpt_path=<run>/checkpoints/last.ckpt to change it.")
    for key in keys:
        OmegaConf.update(cfg, key, OmegaConf.select(given, key), force_add=True)
        log.info("resume: %s=%s", key, OmegaConf.select(given, key))
    cfg.ckpt_path = str(last)
    cfg.paths.output_dir = str(run_dir)
    cfg.resume = None
    return cfg


# What Hydra writes into a run folder before train.py's code runs (besides <job name>.log).
HYDRA_RECORD = frozenset({".hydra", ".hydra/config.yaml", ".hydra/hydra.yaml",
                          ".hydra/overrides.yaml"})


def discard_unstarted_run(out: Path) -> None:
    """Remove the folder of a run refused before it began (a config error): Hydra made it,
    with its record and the log file, before the config was checked, and a folder per typo
    would litter ``outputs/``. A folder holding anything else (another run's files, a resumed
    run's) is left as it is."""
    if not out.is_dir():
        return
    names = {p.relative_to(out).as_posix() for p in out.rglob("*")}
    logs = {n for n in names if "/" not in n and n.endswith(".log")}
    if not names - logs <= HYDRA_RECORD:
        return
    for handler in list(logging.root.handlers):  # the log file is open: close it first
        if Path(getattr(handler, "baseFilename", "/")).parent == out.resolve():
            logging.root.removeHandler(handler)
            handler.close()
    for name in sorted(names, key=len, reverse=True):  # files before their folder
        if (out / name).is_dir():
            (out / name).rmdir()
        else:
            (out / name).unlink()
    out.rmdir()


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def train(cfg: DictConfig, extra_callbacks: Sequence[pl.Callback] = ()) -> float:
    """Train one run; returns the monitored metric of the best checkpoint (for sweepers).
    ``extra_callbacks`` join the configured ones (benchmarks and tests use it)."""
    started = time.perf_counter()
    quiet_libraries()
    out = Path(cfg.paths.output_dir)
    dm, resume_step = check_config(cfg)
    resuming = _resumes_in(cfg, out)
    with ExitStack() as held:
        if _is_main_process():
            lock = claim_run_folder(out, OmegaConf.to_yaml(cfg, resolve=True), resuming)
            held.callback(lock.release)
        return _fit_and_report(cfg, dm, out, started, extra_callbacks,
                               resume_step if resuming else None)


def _fit_and_report(cfg: DictConfig, dm: MaskDataModule, out: Path, started: float,
                    extra_callbacks: Sequence[pl.Callback], resume_step: int | None) -> float:
    """``resume_step``: the global step of ``last.ckpt`` when resuming in ``out``."""
    pl.seed_everything(cfg.seed, workers=True)

    dm, model = build(cfg, dm)
    callbacks = build_callbacks(cfg) + list(extra_callbacks)
    # resuming in place continues the trackers' runs recorded in the folder
    continued = resume_step is not None
    loggers = trackers.build_loggers(cfg, continue_in=out if continued else None)
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers,
                                      plugins=[SafeCheckpointIO()])
    if trainer.is_global_zero:  # fast_dev_run has replaced the loggers: nothing to record
        trackers.start(trainer.loggers, cfg, out, continued)

    ckpt_path = cfg.get("ckpt_path")
    earlier = _earlier_metrics(out, resume_step) if resume_step is not None else None
    t0 = time.perf_counter()
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    fit_seconds = time.perf_counter() - t0
    if earlier is not None and trainer.is_global_zero:
        _merge_metrics_csv(out / "metrics.csv", *earlier)

    ckpt = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.monitor),
                None)  # the best-model checkpoint (the other one keeps the last epoch)
    best = ckpt.best_model_path if ckpt is not None and ckpt.best_model_path else None
    if best:  # evaluate the chosen checkpoint, not the last epoch's weights
        fitted_loggers, trainer.loggers = trainer.loggers, []  # not a training epoch: no log row
        try:
            trainer.validate(model, datamodule=dm, ckpt_path=best, verbose=False)
        finally:
            trainer.loggers = fitted_loggers
    details = model.val_details
    if not trainer.is_global_zero or not details:
        return float(details.get(cfg.monitor, float("nan"))) if details else float("nan")

    metrics = write_run_files(out, dm, details, trainer, ckpt, fit_seconds,
                              time.perf_counter() - started, list(cfg.get("tags") or []))
    trackers.finish(trainer.loggers, out, metrics)
    print_summary(out, metrics, bool(cfg.trainer.get("fast_dev_run")))
    return float(metrics["val"].get(cfg.monitor.split("/", 1)[-1], float("nan")))


def _resumes_in(cfg: DictConfig, out: Path) -> bool:
    """The run continues from its own folder's ``last.ckpt`` (``resume=``)."""
    return bool(cfg.get("ckpt_path")) and Path(str(cfg.ckpt_path)).absolute() == \
        (out / "checkpoints" / "last.ckpt").absolute()


def _is_main_process() -> bool:
    """Rank 0 of rank 0's node (DDP ranks re-run this script with the same folder)."""
    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0


# Hydra's own record of a run (written before the run starts; its log ends in .log) and the
# run's lock: a folder holding only these is still free.
HYDRA_DIR, RUN_LOCK = ".hydra", ".run.lock"


def claim_run_folder(out: Path, config_yaml: str, resuming: bool) -> FileLock:
    """Make ``out`` this run's and return its lock, held (release it when the run ends).

    The folder must be new (or hold only Hydra's own files) unless the run resumes in it, and
    no running process may hold it (a resume of a run that is still training is refused).
    ``config.yaml`` is created only if it does not exist, in one atomic step, so of two runs
    handed the same folder exactly one goes on."""
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out / RUN_LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunFolderError(f"run folder {out} is in use by a running process; wait for it to "
                             "end (or stop it) before resuming it or writing there") from None
    try:
        _claim(out, config_yaml, resuming)
    except BaseException:
        lock.release()
        raise
    return lock


def _claim(out: Path, config_yaml: str, resuming: bool) -> None:
    if resuming:
        atomic.write_text(out / "config.yaml", config_yaml)
        return
    others = sorted(p.name for p in out.iterdir()
                    if p.name not in (HYDRA_DIR, RUN_LOCK) and not p.name.endswith(".log"))
    if others:
        raise RunFolderError(
            f"run folder {out} already holds another run's files ({', '.join(others[:5])}); "
            "a run never writes over another. Choose a new hydra.run.dir (or paths.output_dir), "
            f"or continue that run with resume={out}.")
    try:
        atomic.write_text(out / "config.yaml", config_yaml, exclusive=True)
    except FileExistsError:
        raise RunFolderError(f"run folder {out} was claimed by another run started at the same "
                             "time; start this one again (it gets a new folder)") from None


def _earlier_metrics(out: Path, done_steps: int) -> tuple[pd.DataFrame, int] | None:
    """Before resuming in the same folder: the logged rows of the ``done_steps`` steps the
    checkpoint holds (Lightning's CSV logger starts metrics.csv afresh). Kept beside it until
    merged back."""
    metrics_csv = out / "metrics.csv"
    if not metrics_csv.exists():
        return None
    rows = _read_csv_text(metrics_csv)
    # every row has a step (learning-rate rows have no epoch); the rows logged at the
    # checkpoint's last step belong to the epoch that ended there
    rows = rows[rows["step"].astype(int) < done_steps] if "step" in rows else rows.iloc[0:0]
    rows.to_csv(out / "metrics.before_resume.csv", index=False)
    return rows, done_steps


def _read_csv_text(path: Path) -> pd.DataFrame:
    """Cells as the logger wrote them (no float or NaN round trip), so a merged file is
    byte-for-byte what one uninterrupted run writes."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _merge_metrics_csv(path: Path, earlier: pd.DataFrame, done_steps: int) -> None:
    new = _read_csv_text(path) if path.exists() else pd.DataFrame({"step": []})
    new = new[new["step"].astype(int) >= done_steps]
    merged = pd.concat([earlier, new], ignore_index=True).fillna("")
    atomic.write_csv(merged[sorted(merged.columns)], path)  # the logger's own column order
    (path.parent / "metrics.before_resume.csv").unlink(missing_ok=True)


def write_run_files(out: Path, dm: MaskDataModule, details: dict[str, Any], trainer: pl.Trainer,
                    ckpt: ModelCheckpoint | None, fit_seconds: float,
                    wall_seconds: float, tags: Sequence[str] = ()) -> dict[str, Any]:
    """``metrics.json``, ``confusion_matrix.png``, ``learning_curve.png``,
    ``val_predictions.csv`` and ``calibration.json``."""
    scalars = {k.split("/", 1)[1]: v for k, v in details.items() if k.startswith("val/")}
    # the epoch of the checkpoint the final validation loaded (best.ckpt)
    best_epoch = (trainer.lightning_module.loaded_epoch if ckpt and ckpt.best_model_path
                  else None)
    matrix = np.asarray(details["confusion_matrix"])
    support, predicted = matrix.sum(1), matrix.sum(0)
    metrics = {
        "val": {
            **scalars,
            "classes_scored": classes_scored(support, predicted),
            # a class absent from validation has no F1 (null), not 0
            "f1_per_class": {name: (f if n else None) for name, f, n in
                             zip(labels.CLASS_NAMES, details["f1_per_class"], support,
                                 strict=True)},
        },
        "confusion_matrix": details["confusion_matrix"],
        "best_epoch": best_epoch,
        "epochs": trainer.current_epoch,
        "fit_seconds": round(fit_seconds, 1),
        "wall_seconds": round(wall_seconds, 1),
        "best_checkpoint": ckpt.best_model_path if ckpt else None,
        "val_people": int(dm.val_catalog["person_id"].nunique()),
        "val_images": len(dm.val_catalog),
        "train_images": len(dm.train_rows),
        "tags": [str(t) for t in tags],
    }
    confusion_matrix_png(details["confusion_matrix"], out / "confusion_matrix.png",
                         title=f"validation confusion matrix (macro-F1 {scalars['f1']:.3f})")
    if (out / "metrics.csv").exists():
        learning_curve_png(out / "metrics.csv", out / "learning_curve.png", best_epoch)
    if "probs" in details:
        probs = details["probs"].numpy()
        val = dm.val_catalog[["path", "folder", "person_id", "label"]].reset_index(drop=True)
        if len(val) == len(probs):
            val["pred"] = probs.argmax(1)
            prob_cols = pd.DataFrame(probs, columns=[f"prob_{c}" for c in range(probs.shape[1])])
            atomic.write_csv(pd.concat([val, prob_cols], axis=1), out / "val_predictions.csv",
                             float_format="%.6f")
            fitted = calibration.fit(probs, details["targets"].numpy(),
                                     groups=val["person_id"].to_numpy())
            calibration.save(fitted, out)
            metrics["calibration"] = {k: fitted[k] for k in ("share", "f1_before", "f1_after")}
        else:  # fast_dev_run or limit_val_batches: rows cannot be matched to images
            log.warning("val_predictions.csv not written: validation saw %d of the %d "
                        "validation images (trainer.limit_val_batches or fast_dev_run)",
                        len(probs), len(val))
    atomic.write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    return metrics


RUN_FILES = ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "metrics.json", "metrics.csv",
             "confusion_matrix.png", "learning_curve.png", "val_predictions.csv",
             "calibration.json", "config.yaml", trackers.IDS_FILE, "train.log")


def summary_lines(out: Path, metrics: dict[str, Any], fast_dev_run: bool = False) -> list[str]:
    """The run's summary, as ``train.py`` prints it at the end."""
    v = metrics["val"]
    scored = {k: f for k, f in v["f1_per_class"].items() if f is not None}
    absent = [k for k, f in v["f1_per_class"].items() if f is None]
    worst = sorted(scored.items(), key=lambda kv: kv[1])[:3]
    if fast_dev_run:
        head = ("fast_dev_run: one training and one validation batch, no checkpoint; the "
                "figures below are of that one batch")
    else:
        head = (f"best epoch {metrics['best_epoch']} (of 0..{metrics['epochs'] - 1})   "
                f"fit {metrics['fit_seconds']:.0f}s   ")
        head += (f"{metrics['train_images']} train / {metrics['val_images']} val images "
                 f"({metrics['val_people']} val people)")
    return [
        "=" * 72,
        head,
        f"val macro-F1 {v['f1']:.4f} over {v['classes_scored']} classes   accuracy "
        f"{v['acc']:.4f}   F1 mask {v['f1_mask']:.3f}  gender {v['f1_gender']:.3f}  "
        f"age {v['f1_age']:.3f}",
        "weakest classes: " + ", ".join(f"{k} {s:.2f}" for k, s in worst),
        *([f"not in validation (F1 n/a): {', '.join(absent)}"] if absent else []),
        *([f"calibration.json: decision offsets (share {metrics['calibration']['share']}) give "
           f"val macro-F1 {metrics['calibration']['f1_after']:.4f} on these images; "
           "predict.py calibrate=true applies them"]
          if "calibration" in metrics else []),
        *([f"tags: {', '.join(metrics['tags'])}"] if metrics.get("tags") else []),
        f"run folder: {out}",
        "  " + ", ".join(name for name in RUN_FILES if (out / name).exists()),
        "=" * 72,
    ]


def print_summary(out: Path, metrics: dict[str, Any], fast_dev_run: bool = False) -> None:
    """Logged, so the run's ``train.log`` ends with it too."""
    log.info("\n".join(["", *summary_lines(out, metrics, fast_dev_run)]))

