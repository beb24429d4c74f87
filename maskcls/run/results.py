"""What a finished run leaves in its folder: metrics, predictions, calibration, plots, and the
one-screen summary printed at the end."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from maskcls import atomic, labels
from maskcls.analysis.galleries import errors_png
from maskcls.analysis.plots import confusion_matrix_png, learning_curve_png
from maskcls.data.datamodule import MaskDataModule
from maskcls.inference import calibration
from maskcls.model.metrics import classes_scored
from maskcls.run import folder as rf

log = logging.getLogger(__name__)


def write_run_files(out: Path, dm: MaskDataModule, details: dict[str, Any], trainer: pl.Trainer,
                    ckpt: ModelCheckpoint | None, fit_seconds: float,
                    wall_seconds: float, tags: Sequence[str] = ()) -> dict[str, Any]:
    """``metrics.json``, ``metrics_epochs.csv``, ``confusion_matrix.png``,
    ``learning_curve.png``, ``val_predictions.csv`` and ``calibration.json``."""
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
        "data": dm.fingerprint,  # what it trained on (checked again on resume)
        "device": str(trainer.strategy.root_device),
    }
    confusion_matrix_png(details["confusion_matrix"], out / rf.CONFUSION_PNG,
                         title=f"validation confusion matrix (macro-F1 {scalars['f1']:.3f})")
    if (out / rf.METRICS_CSV).exists():
        learning_curve_png(out / rf.METRICS_CSV, out / rf.LEARNING_CURVE_PNG, best_epoch,
                           run_name=out.name)
        write_epoch_table(out / rf.METRICS_CSV, out / rf.METRICS_EPOCHS)
    if "probs" in details:
        probs = details["probs"].numpy()
        val = dm.val_catalog[["path", "folder", "person_id", "label"]].reset_index(drop=True)
        if len(val) == len(probs):
            val["pred"] = probs.argmax(1)
            prob_cols = pd.DataFrame(probs, columns=[f"prob_{c}" for c in range(probs.shape[1])])
            table = pd.concat([val, prob_cols], axis=1)
            atomic.write_csv(table, out / rf.VAL_PREDICTIONS, float_format="%.6f")
            errors_png(table, out / rf.ERRORS_PNG)
            fitted = calibration.fit(probs, details["targets"].numpy(),
                                     groups=val["person_id"].to_numpy())
            calibration.save(fitted, out / rf.CALIBRATION)
            metrics["calibration"] = {k: fitted[k] for k in ("share", "f1_before", "f1_after")}
        else:  # fast_dev_run or limit_val_batches: rows cannot be matched to images
            log.warning("val_predictions.csv not written: validation saw %d of the %d "
                        "validation images (trainer.limit_val_batches or fast_dev_run)",
                        len(probs), len(val))
    atomic.write_text(out / rf.METRICS_JSON, metrics_json(metrics))
    return metrics


def metrics_json(metrics: dict[str, Any]) -> str:
    """Indented JSON with the confusion matrix as 18 rows of 18 (not 324 lines)."""
    rows = metrics["confusion_matrix"]
    text = json.dumps({**metrics, "confusion_matrix": [f"@row{i}@" for i in range(len(rows))]},
                      indent=2)
    for i, row in enumerate(rows):
        text = text.replace(f'"@row{i}@"', json.dumps([int(v) for v in row]))
    return text


def write_epoch_table(metrics_csv: Path, out: Path) -> None:
    """Lightning's sparse ``metrics.csv`` (a row per logging call) as one row per epoch with
    every metric a column (the learning rate, logged with no epoch, joins its step's epoch)."""
    rows = pd.read_csv(metrics_csv)
    if "epoch" not in rows or rows.empty:
        return
    rows["epoch"] = rows["epoch"].bfill().ffill()
    table = rows.drop(columns=["step"], errors="ignore").groupby("epoch").last()
    table.index = table.index.astype(int)
    atomic.write_csv(table.reset_index(), out)


def tracker_lines(out: Path) -> list[str]:
    """Where this run's tracker entries are, and the command that opens each."""
    path = out / rf.TRACKERS
    try:
        ids = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        return []
    lines = []
    if "mlflow" in ids:
        m = ids["mlflow"]
        uri = str(m.get("tracking_uri", ""))
        open_it = (f"mlflow ui --backend-store-uri {uri}" if not uri.startswith("http")
                   else f"{uri.rstrip('/')}/#/experiments/{m.get('experiment_id')}/runs/"
                        f"{m.get('run_id')}")
        lines.append(f"MLflow run {m.get('run_id')}: {open_it}")
    if "tensorboard" in ids:
        lines.append(f"TensorBoard: tensorboard --logdir {ids['tensorboard']['log_dir']}")
    if "wandb" in ids:
        w = ids["wandb"]
        lines.append(f"W&B run {w.get('run_id')}: "
                     + (w["url"] if w.get("url") else f"wandb sync {w.get('dir')}"))
    return lines


def crop_views(augment: Any) -> float | None:
    """The ``predict.py tta_crop`` a run trained with ``augment`` is predicted with: the five
    crops (``rf.CROP_VIEWS``) when it trained with zoom or shift (``augment.scale``,
    ``augment.translate``), since such a model has seen faces off-centre
    (docs/prediction.md); else None."""
    zoomed = bool(augment) and bool(augment.get("scale") or augment.get("translate"))
    return rf.CROP_VIEWS if zoomed else None


def predict_views(augment: Any) -> list[str]:
    """The test-time views the summary's ``next:`` line asks for: the flip, and the five
    crops where ``crop_views`` takes them."""
    crop = crop_views(augment)
    return ["tta=true", *([f"tta_crop={crop}"] if crop else [])]


def summary_lines(out: Path, metrics: dict[str, Any], fast_dev_run: bool = False,
                  views: Sequence[str] = ("tta=true",)) -> list[str]:
    """The run's summary, as ``train.py`` prints it at the end; ``views``: the test-time views
    its ``next:`` line passes to ``predict.py`` (``predict_views``)."""
    v = metrics["val"]
    scored = {k: f for k, f in v["f1_per_class"].items() if f is not None}
    absent = [k for k, f in v["f1_per_class"].items() if f is None]
    worst = sorted(scored.items(), key=lambda kv: kv[1])[:3]
    if fast_dev_run:
        head = ("fast_dev_run: one training and one validation batch, no checkpoint; the "
                "figures below are of that one batch")
    else:
        head = (f"best epoch {metrics['best_epoch']} (of 0..{metrics['epochs'] - 1})   "
                f"fit {metrics['fit_seconds']:.0f}s on {metrics.get('device', 'cpu')}   ")
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
        *tracker_lines(out),
        f"run folder: {out}",
        "  " + ", ".join(name for name in rf.RUN_FILES if (out / name).exists()),
        *([f"next: {rf.predict_command(f'ckpt={out.absolute()}', *views)}"]
          if (out / rf.BEST_CKPT).exists() else []),
        "=" * 72,
    ]


def print_summary(out: Path, metrics: dict[str, Any], fast_dev_run: bool = False,
                  views: Sequence[str] = ("tta=true",)) -> None:
    """Logged, so the run's ``train.log`` ends with it too."""
    log.info("\n".join(["", *summary_lines(out, metrics, fast_dev_run, views)]))

