"""Trained runs on disk, read back: which checkpoints a ``ckpt=`` names, the model and eval
pipeline a checkpoint records, and the data its run trained on. Prediction and export use it;
every checkpoint goes through the one loader in ``maskcls.run.checkpoints``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from maskcls import labels
from maskcls.data.datamodule import DATAMODULE_KEY
from maskcls.data.pipeline import Pipeline
from maskcls.errors import CheckpointError, ConfigError, DataLayoutError
from maskcls.model.module import DEFAULT_HEAD, MaskClassifier
from maskcls.run import folder as rf
from maskcls.run import received


@dataclass
class Member:
    """One trained model of an ensemble."""

    ckpt: Path
    run_dir: Path | None
    label: str | None = None  # how it is named in the output (default: its folder's name)

    @property
    def name(self) -> str:
        return self.label or str(self.run_dir.name if self.run_dir else self.ckpt.stem)


def find_checkpoints(path: str | os.PathLike) -> tuple[list[Member], Path]:
    """Resolve ``ckpt=`` to checkpoints and the folder the submission goes to by default.

    ``path`` is a ``.ckpt`` file, a run folder (its ``checkpoints/best.ckpt``) or a multirun
    folder (every job's ``checkpoints/best.ckpt``).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"ckpt={path}: no such file or folder. Give a .ckpt file, a run "
                              "folder (outputs/<date>/<time>) or a multirun folder.")
    if p.is_file():
        run = p.parent.parent if p.parent.name == rf.CHECKPOINTS else None
        known_run = run if run and rf.is_run_folder(run) else None
        return [Member(p, known_run)], (run or p.parent)
    if (p / rf.BEST_CKPT).exists():
        return [Member(p / rf.BEST_CKPT, p)], p
    runs = sorted((d for d in p.iterdir() if (d / rf.BEST_CKPT).exists()),
                  key=lambda d: rf.job_order(d.name))
    if not runs:
        raise CheckpointError(f"ckpt={path}: no checkpoints/best.ckpt in this folder or its "
                              "sub-folders; is it a finished run or multirun folder?")
    if not (p / "multirun.yaml").is_file() and not all(d.name.isdigit() for d in runs):
        raise CheckpointError(
            f"ckpt={path} holds {len(runs)} separate runs ({', '.join(d.name for d in runs[:3])}"
            f"{' ...' if len(runs) > 3 else ''}), not one sweep, so they are not ensembled "
            "together. Give one run folder, a multirun folder, or the runs to ensemble as a "
            f"list: ckpt=[{p / runs[0].name},...]")
    # a job stopped before its end (Ctrl-C, SIGTERM) has a best.ckpt of an early epoch
    finished = [d for d in runs if (d / rf.METRICS_JSON).is_file()]
    if not finished:
        raise CheckpointError(f"ckpt={path}: no job of this sweep finished (no metrics.json); "
                              "resume them (python train.py resume=<job folder>) or give a "
                              "job's checkpoints/best.ckpt itself")
    return [Member(d / rf.BEST_CKPT, d) for d in finished], p


def missing_jobs(folder: Path, members: Sequence[Member]) -> list[str]:
    """A sweep folder's jobs that have no ``best.ckpt`` (failed, interrupted, unfinished):
    an ensemble of the others is made, and says which are missing."""
    if not members or not all(m.run_dir and m.run_dir.parent == folder for m in members):
        return []
    found = {m.run_dir.name for m in members if m.run_dir is not None}
    missing = sorted((d.name for d in folder.iterdir() if d.is_dir() and d.name not in found
                      and ((d / rf.HYDRA_DIR).is_dir() or rf.is_run_folder(d))),
                     key=rf.job_order)
    if not missing:
        return []
    why = {n: ("failed" if (folder / n / rf.FAILURE).exists() else "unfinished") for n in missing}
    return [f"ensembling {len(members)} job(s); unfinished or failed job(s) left out: "
            + ", ".join(f"{n} ({why[n]})" for n in missing)]


def trained_data_root(run_dir: Path | None) -> str | None:
    """The ``data.root`` a run folder's config trained on (None outside a run folder)."""
    if run_dir is None:
        return None
    path = run_dir / rf.CONFIG
    root = OmegaConf.select(received.load_config(path, f"ckpt={run_dir}"), "data.root")
    if root is None:
        raise ConfigError(f"{path} records no data.root; pass data.root=/path/to/data")
    return str(root)


def load_model(ckpt: dict[str, Any], path: Path) -> MaskClassifier:
    """The checkpoint's network in eval mode, its head and backbone from its hyper-parameters."""
    hp = ckpt.get("hyper_parameters") or {}
    if not isinstance(hp, dict) or "backbone" not in hp:
        raise CheckpointError(f"{path}: no backbone in the checkpoint's hyper-parameters; was it "
                              "written by maskcls?")
    _check_recorded(hp, path)
    n = hp.get("num_classes", labels.NUM_CLASSES)
    head = hp.get("head", DEFAULT_HEAD)  # checkpoints record their head: no flag needed here
    fc = [v for k, v in ckpt["state_dict"].items() if k.startswith("net.") and
          k.endswith(".weight") and v.ndim == 2]  # a single head's classifier is the last
    got = fc[-1].shape[0] if head == "single" and fc else n
    if got != labels.NUM_CLASSES:
        raise CheckpointError(f"{path}: the model predicts {got} classes, the competition has "
                              f"{labels.NUM_CLASSES}")
    model = MaskClassifier(backbone=hp["backbone"], pretrained=False, head=head,
                           drop_rate=hp.get("drop_rate", 0.0),
                           channels_last=hp.get("channels_last", False))
    weights = ckpt["state_dict"]
    if hp.get("age_regression"):  # the age-regression head only shapes training: left out
        weights = {k: v for k, v in weights.items() if not k.startswith("age_head.")}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: its weights do not fit a {hp['backbone']} with a "
                              f"{head} head ({str(e).splitlines()[0][:200]})") from None
    return model.eval()


# hyper-parameter: (types it may have, what it is) - a checkpoint is data from anyone
RECORDED = {"backbone": ((str,), "a timm model name"), "num_classes": ((int,), "an integer"),
            "head": ((str,), "single or multi"), "drop_rate": ((int, float), "a number"),
            "channels_last": ((bool,), "true or false"),
            "age_regression": ((int, float), "a number")}


def _check_recorded(hp: dict[str, Any], path: Path) -> None:
    for key, (types, what) in RECORDED.items():
        value = hp.get(key)
        if value is not None and (not isinstance(value, types) or
                                  (bool not in types and isinstance(value, bool))):
            raise CheckpointError(f"{path}: its recorded {key} is {value!r}, not {what}; the "
                                  "checkpoint was edited or damaged: use the run's own file")


def eval_pipeline(ckpt: dict[str, Any], path: Path, face_boxes: str | None = None) -> Pipeline:
    """The pipeline the checkpoint's run evaluated with (recorded by its datamodule);
    ``face_boxes`` replaces the box file of a model trained on face crops."""
    state = ckpt.get(DATAMODULE_KEY)
    if not state:
        raise CheckpointError(f"{path}: the checkpoint does not record its eval pipeline "
                              f"(no '{DATAMODULE_KEY}' entry); retrain with this version")
    return pipeline_from_state(state, path, face_boxes)


def pipeline_from_state(state: dict[str, Any], path: Path, face_boxes: str | None = None
                        ) -> Pipeline:
    """A recorded pipeline (a checkpoint's, an exported model's), its face boxes checked."""
    if face_boxes and not state.get("face_boxes"):
        raise ConfigError(f"face_boxes={face_boxes}: {path} was trained without face crops, so "
                          "it takes no box file; drop face_boxes=")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: its recorded eval pipeline is not a mapping; the file "
                              "was edited or damaged: use the run's own file")
    try:
        return Pipeline.from_state(state, face_boxes)
    except DataLayoutError as e:
        raise CheckpointError(f"{path} crops faces with boxes from a file it cannot use: {e}. "
                              "Pass face_boxes=<csv with boxes of the eval images>") from None
    except (TypeError, ValueError, KeyError) as e:  # ConfigError too: the file, not a key
        raise CheckpointError(f"{path}: its recorded eval pipeline is damaged ({type(e).__name__}:"
                              f" {str(e)[:200]}); use the run's own file") from None


def recorded_eval_set(ckpt: dict[str, Any]) -> str | None:
    """The digest of the ``eval/info.csv`` beside the data the checkpoint's run trained on."""
    return (ckpt.get(DATAMODULE_KEY) or {}).get("eval_data")
