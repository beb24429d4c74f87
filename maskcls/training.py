"""What ``train.py`` does, importable so tests and sweeps reach it: check the config, build
data / model / trainer from it, fit, evaluate the best checkpoint, write the run folder."""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytorch_lightning as pl
import timm
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from maskcls import labels
from maskcls.data.datamodule import MaskDataModule
from maskcls.model.module import MaskClassifier, create_backbone
from maskcls.plots import confusion_matrix_png
from maskcls.reliability import AtomicCheckpointIO

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


def check_config(cfg: DictConfig) -> None:
    """Catch configuration mistakes before any data is read or model is built."""
    name = cfg.model.backbone
    if not timm.is_model(name):
        create_backbone(name)  # raises the error with suggestions
    # Constructing these reads no data: it only checks their settings (image size, split,
    # sampling, cache, normalisation; loss parameters).
    _build(cfg.data, _convert_="all")
    _build(cfg.loss, class_counts=[1] * labels.NUM_CLASSES)
    sched = cfg.get("scheduler") or {}
    if sched.get("warmup_epochs") and "ReduceLROnPlateau" in str(
            (sched.get("scheduler") or {}).get("_target_", "")):
        raise ValueError("scheduler.warmup_epochs is not supported with scheduler=plateau; set "
                         "scheduler.warmup_epochs=0")
    root = Path(str(cfg.data.root)).expanduser()
    if not cfg.data.get("synthetic") and not (root / "train" / "images").is_dir():
        raise FileNotFoundError(
            f"data.root={str(cfg.data.root)!r}: {root / 'train' / 'images'} does not exist. "
            "Point data.root at the folder holding train/ and eval/.")


def build(cfg: DictConfig) -> tuple[MaskDataModule, MaskClassifier]:
    dm: MaskDataModule = _build(cfg.data, _convert_="all")
    dm.prepare_data()
    dm.setup("fit")
    loss = _build(cfg.loss, class_counts=dm.class_counts)
    model: MaskClassifier = _build(
        cfg.model, loss=loss, optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler, _convert_="all"))
    _check_input_size(model, dm.image_size)
    return dm, model


def _check_input_size(model: MaskClassifier, image_size: tuple[int, int]) -> None:
    """One image through the network now, so a size the backbone cannot take fails here
    with a message rather than after the data is loaded into the first training step."""
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, *image_size))
    except RuntimeError as e:
        raise ValueError(f"data.image_size={list(image_size)} is too small for "
                         f"model.backbone={model.hparams.backbone} ({str(e).splitlines()[0]}); "
                         "use a larger data.image_size") from None
    finally:
        model.train(was_training)


def run(cfg: DictConfig) -> float:
    """``train.py``'s job. In a sweep, a failing job (a bad value, out of memory) is recorded
    in its folder as ``failure.json`` and returns NaN, so the other jobs still run and the
    sweep report lists it as failed."""
    if cfg.get("resume"):
        cfg = resume_config(cfg.resume)
    if not _in_multirun():
        return train(cfg)
    try:
        return train(cfg)
    except Exception as e:  # noqa: BLE001 - any job failure is recorded, none stops the sweep
        out = Path(cfg.paths.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        failure = {"type": type(e).__name__, "message": str(e),
                   "traceback": traceback.format_exc()}
        _atomic_write(out / "failure.json", json.dumps(failure, indent=2))
        log.error("job failed (%s: %s); the sweep goes on. Details: %s", type(e).__name__, e,
                  out / "failure.json")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return float("nan")


def resume_config(run_dir: str | Path) -> DictConfig:
    """The saved config of ``run_dir``, set to continue from its ``last.ckpt`` in place."""
    run_dir = Path(run_dir).expanduser()
    saved, last = run_dir / "config.yaml", run_dir / "checkpoints" / "last.ckpt"
    for needed in (saved, last):
        if not needed.exists():
            raise FileNotFoundError(f"resume={run_dir}: {needed} does not exist; give the run "
                                    "folder of a run that saved at least one epoch")
    cfg = OmegaConf.load(saved)
    cfg.ckpt_path = str(last)
    cfg.paths.output_dir = str(run_dir)
    cfg.resume = None
    return cfg


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def train(cfg: DictConfig, extra_callbacks: Sequence[pl.Callback] = ()) -> float:
    """Train one run; returns the monitored metric of the best checkpoint (for sweepers).
    ``extra_callbacks`` join the configured ones (benchmarks and tests use it)."""
    started = time.perf_counter()
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    check_config(cfg)
    if int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0:
        _atomic_write(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    pl.seed_everything(cfg.seed, workers=True)

    dm, model = build(cfg)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    callbacks += list(extra_callbacks)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers,
                                      plugins=[AtomicCheckpointIO()])

    ckpt_path = cfg.get("ckpt_path")
    earlier = _earlier_metrics(out, ckpt_path)
    t0 = time.perf_counter()
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    fit_seconds = time.perf_counter() - t0
    if earlier is not None and trainer.is_global_zero:
        _merge_metrics_csv(out / "metrics.csv", *earlier)

    ckpt = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.monitor),
                None)  # the best-model checkpoint (the other one keeps the last epoch)
    best = ckpt.best_model_path if ckpt is not None and ckpt.best_model_path else None
    if best:  # evaluate the chosen checkpoint, not the last epoch's weights
        trainer.validate(model, datamodule=dm, ckpt_path=best, verbose=False)
    details = model.val_details
    if not trainer.is_global_zero or not details:
        return float(details.get(cfg.monitor, float("nan"))) if details else float("nan")

    metrics = write_run_files(out, dm, details, trainer, ckpt, fit_seconds,
                              time.perf_counter() - started)
    print_summary(out, metrics)
    return float(metrics["val"].get(cfg.monitor.split("/", 1)[-1], float("nan")))


def _earlier_metrics(out: Path, ckpt_path: str | None) -> tuple[pd.DataFrame, int] | None:
    """Before resuming in the same folder: the logged rows of the epochs the checkpoint holds
    (Lightning's CSV logger starts metrics.csv afresh). Kept beside it until merged back."""
    metrics_csv = out / "metrics.csv"
    if not ckpt_path or not metrics_csv.exists():
        return None
    done_epochs = int(torch.load(ckpt_path, map_location="cpu", weights_only=True)["epoch"]) + 1
    rows = pd.read_csv(metrics_csv)
    rows = rows[rows["epoch"] < done_epochs] if "epoch" in rows else rows.iloc[0:0]
    rows.to_csv(out / "metrics.before_resume.csv", index=False)
    return rows, done_epochs


def _merge_metrics_csv(path: Path, earlier: pd.DataFrame, done_epochs: int) -> None:
    new = pd.read_csv(path) if path.exists() else pd.DataFrame()
    if "epoch" in new:
        new = new[new["epoch"] >= done_epochs]
    merged = pd.concat([earlier, new], ignore_index=True)
    _atomic_write(path, merged.to_csv(index=False))
    (path.parent / "metrics.before_resume.csv").unlink(missing_ok=True)


def write_run_files(out: Path, dm: MaskDataModule, details: dict[str, Any], trainer: pl.Trainer,
                    ckpt: ModelCheckpoint | None, fit_seconds: float,
                    wall_seconds: float) -> dict[str, Any]:
    """``metrics.json``, ``confusion_matrix.png`` and ``val_predictions.csv``."""
    scalars = {k.split("/", 1)[1]: v for k, v in details.items() if k.startswith("val/")}
    # the epoch of the checkpoint the final validation loaded (best.ckpt)
    best_epoch = (trainer.lightning_module.loaded_epoch if ckpt and ckpt.best_model_path
                  else None)
    metrics = {
        "val": {
            **scalars,
            "f1_per_class": dict(zip(labels.CLASS_NAMES, details["f1_per_class"], strict=True)),
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
    }
    _atomic_write(out / "metrics.json", json.dumps(metrics, indent=2))
    confusion_matrix_png(details["confusion_matrix"], out / "confusion_matrix.png",
                         title=f"validation confusion matrix (macro-F1 {scalars['f1']:.3f})")
    if "probs" in details:
        probs = details["probs"].numpy()
        val = dm.val_catalog[["path", "folder", "person_id", "label"]].reset_index(drop=True)
        if len(val) == len(probs):
            val["pred"] = probs.argmax(1)
            prob_cols = pd.DataFrame(probs, columns=[f"prob_{c}" for c in range(probs.shape[1])])
            pd.concat([val, prob_cols], axis=1).to_csv(out / "val_predictions.csv", index=False,
                                                       float_format="%.6f")
        else:  # fast_dev_run or limit_val_batches: rows cannot be matched to images
            log.warning("val_predictions.csv not written: validation saw %d of the %d "
                        "validation images (trainer.limit_val_batches or fast_dev_run)",
                        len(probs), len(val))
    return metrics


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


RUN_FILES = ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "metrics.json", "metrics.csv",
             "confusion_matrix.png", "val_predictions.csv", "config.yaml")


def print_summary(out: Path, metrics: dict[str, Any]) -> None:
    v = metrics["val"]
    worst = sorted(v["f1_per_class"].items(), key=lambda kv: kv[1])[:3]
    lines = [
        "",
        "=" * 72,
        f"best epoch {metrics['best_epoch']} (of 0..{metrics['epochs'] - 1})   "
        f"fit {metrics['fit_seconds']:.0f}s   "
        f"{metrics['train_images']} train / {metrics['val_images']} val images "
        f"({metrics['val_people']} val people)",
        f"val macro-F1 {v['f1']:.4f}   accuracy {v['acc']:.4f}   "
        f"F1 mask {v['f1_mask']:.3f}  gender {v['f1_gender']:.3f}  age {v['f1_age']:.3f}",
        "weakest classes: " + ", ".join(f"{k} {s:.2f}" for k, s in worst),
        f"run folder: {out}",
        "  " + ", ".join(name for name in RUN_FILES if (out / name).exists()),
        "=" * 72,
    ]
    print("\n".join(lines), flush=True)

