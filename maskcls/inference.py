"""Checkpoints -> competition submission: what ``predict.py`` does, importable.

A checkpoint knows its backbone (hyper-parameters) and its eval pipeline (the datamodule state:
image size, face crop, normalisation), and its run folder knows the data it was trained on, so
prediction never falls back to defaults. Several checkpoints (a k-fold sweep) are ensembled by
averaging their softmax probabilities.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader

from maskcls import atomic, calibration, labels
from maskcls.checkpoints import load_checkpoint
from maskcls.data import catalog as cat
from maskcls.data.batch_transforms import BatchTransform
from maskcls.data.datamodule import DATAMODULE_KEY
from maskcls.data.dataset import ImageDataset
from maskcls.data.fingerprint import eval_fingerprint
from maskcls.data.pipeline import Pipeline
from maskcls.errors import CheckpointError, ConfigError, DataLayoutError
from maskcls.exported import ExportedModel, load_exported
from maskcls.logs import quiet_libraries
from maskcls.model.metrics import score
from maskcls.model.module import MaskClassifier
from maskcls.output_paths import check_output
from maskcls.progress import ProgressBar, progress_bar
from maskcls.run import folder as rf


@dataclass
class Member:
    """One trained model of an ensemble."""

    ckpt: Path
    run_dir: Path | None

    @property
    def name(self) -> str:
        return str(self.run_dir.name if self.run_dir else self.ckpt.stem)


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
        run = p.parent.parent if p.parent.name == "checkpoints" else None
        known_run = run if run and rf.is_run_folder(run) else None
        return [Member(p, known_run)], (run or p.parent)
    best = p / rf.BEST_CKPT
    if best.exists():
        return [Member(best, p)], p
    jobs = sorted((d for d in p.iterdir() if (d / rf.BEST_CKPT).exists()),
                  key=lambda d: (len(d.name), d.name))
    if not jobs:
        raise CheckpointError(f"ckpt={path}: no checkpoints/best.ckpt in this folder or its "
                              "sub-folders; is it a finished run or multirun folder?")
    return [Member(d / rf.BEST_CKPT, d) for d in jobs], p


def load_model(ckpt: dict[str, Any], path: Path) -> MaskClassifier:
    hp = dict(ckpt.get("hyper_parameters") or {})
    if "backbone" not in hp:
        raise CheckpointError(f"{path}: no backbone in the checkpoint's hyper-parameters; was it "
                              "written by maskcls?")
    n = int(hp.get("num_classes", labels.NUM_CLASSES))
    head = hp.get("head", "single")  # checkpoints record their head: no flag needed here
    fc = [v for k, v in ckpt["state_dict"].items() if k.startswith("net.") and
          k.endswith(".weight") and v.ndim == 2]  # a single head's classifier is the last
    got = fc[-1].shape[0] if head == "single" and fc else n
    if got != labels.NUM_CLASSES:
        raise CheckpointError(f"{path}: the model predicts {got} classes, the competition has "
                              f"{labels.NUM_CLASSES}")
    model = MaskClassifier(backbone=hp["backbone"], pretrained=False, head=head,
                           drop_rate=hp.get("drop_rate", 0.0),
                           channels_last=hp.get("channels_last", False))
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: its weights do not fit a {hp['backbone']} with a "
                              f"{head} head ({str(e).splitlines()[0][:200]})") from None
    return model.eval()


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
    try:
        return Pipeline.from_state(state, face_boxes)
    except DataLayoutError as e:
        raise CheckpointError(f"{path} crops faces with boxes from a file it cannot use: {e}. "
                              "Pass face_boxes=<csv with boxes of the eval images>") from None


def trained_data_root(run_dir: Path | None) -> str | None:
    """The ``data.root`` a run folder's config trained on (None outside a run folder)."""
    if run_dir is None:
        return None
    path = run_dir / rf.CONFIG
    try:
        return str(OmegaConf.load(path).data.root)
    except Exception as e:  # noqa: BLE001 - a damaged config: say which file
        raise ConfigError(f"{path} cannot be read for its data.root ({type(e).__name__}); pass "
                          "data.root=/path/to/data") from None


class _Ensemble(pl.LightningModule):
    """Softmax of every model over one batch of uint8 pixels, each model with its own
    normalisation; averaged with the horizontally flipped view when ``tta``."""

    def __init__(self, models: Sequence[MaskClassifier], normalisers: Sequence[BatchTransform],
                 tta: bool) -> None:
        super().__init__()
        self.models, self.normalisers = nn.ModuleList(models), nn.ModuleList(normalisers)
        self.tta = tta

    def predict_step(self, batch: Any, _: int) -> torch.Tensor:
        """(models, batch, classes) probabilities."""
        out = []
        for model, normalise in zip(self.models, self.normalisers, strict=True):
            x = normalise(batch[0])
            prob = model(x).float().softmax(1)
            if self.tta:
                prob = (prob + model(x.flip(-1)).float().softmax(1)) / 2
            out.append(prob)
        return torch.stack(out)


def _eval_loader(eval_df: pd.DataFrame, pipeline: Pipeline, batch_size: int,
                 num_workers: int) -> DataLoader:
    """The eval images in ``info.csv`` order, as uint8 pixels read by ``pipeline``."""
    return DataLoader(ImageDataset(eval_df["path"].tolist(), None, pipeline),
                      batch_size=batch_size, num_workers=num_workers, persistent_workers=False,
                      pin_memory=torch.cuda.is_available())


def predict_probs(members: Sequence[Member], data_root: str | os.PathLike, tta: bool = False,
                  batch_size: int = 128, num_workers: int = 2, accelerator: str = "auto",
                  face_boxes: str | None = None, seen_eval: set[str] | None = None
                  ) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """(eval table in info.csv order, one (N, 18) probability array per member).
    ``seen_eval`` collects the eval-set digests the members' runs recorded.

    Members that read images the same way (image size and face crop) share one pass over the
    eval set: each image is decoded once for all of them (a k-fold ensemble decodes once)."""
    groups: dict[str, list[tuple[int, MaskClassifier, BatchTransform]]] = {}
    pipelines: dict[str, Pipeline] = {}
    for i, m in enumerate(members):  # check every checkpoint, then the data, before predicting
        ckpt = load_checkpoint(m.ckpt)
        model = load_model(ckpt, m.ckpt)
        pipeline = eval_pipeline(ckpt, m.ckpt, face_boxes)
        if seen_eval is not None and (ckpt.get(DATAMODULE_KEY) or {}).get("eval_data"):
            seen_eval.add(ckpt[DATAMODULE_KEY]["eval_data"])
        pipelines.setdefault(pipeline.pixels_key, pipeline)
        groups.setdefault(pipeline.pixels_key, []).append((i, model, pipeline.normaliser()))
    eval_df = cat.scan_eval(data_root)
    for pipeline in pipelines.values():
        if pipeline.boxes is not None:
            pipeline.boxes.check_covers(eval_df["path"].tolist())
    trainer = pl.Trainer(accelerator=accelerator, devices=1, logger=False,
                         enable_checkpointing=False, enable_model_summary=False,
                         callbacks=[ProgressBar()])
    out: list[np.ndarray | None] = [None] * len(members)
    for key, group in groups.items():
        loader = _eval_loader(eval_df, pipelines[key], batch_size, num_workers)
        ensemble = _Ensemble([g[1] for g in group], [g[2] for g in group], tta)
        probs = torch.cat(trainer.predict(ensemble, dataloaders=loader), dim=1).numpy()
        for (i, _, _), p in zip(group, probs, strict=True):
            out[i] = p
    return eval_df, out


def _missing_jobs(folder: Path, members: Sequence[Member]) -> list[str]:
    """A sweep folder's jobs that have no ``best.ckpt`` (failed, interrupted, unfinished):
    an ensemble of the others is made, and says which are missing."""
    if len(members) < 2 or not all(m.run_dir and m.run_dir.parent == folder for m in members):
        return []
    found = {m.run_dir.name for m in members if m.run_dir is not None}
    missing = sorted((d.name for d in folder.iterdir() if d.is_dir() and d.name not in found
                      and ((d / rf.HYDRA_DIR).is_dir() or rf.is_run_folder(d))),
                     key=lambda n: (len(n), n))
    if not missing:
        return []
    why = {n: ("failed" if (folder / n / rf.FAILURE).exists() else "unfinished") for n in missing}
    return [f"ensembling {len(members)} job(s); job(s) without checkpoints/best.ckpt left out: "
            + ", ".join(f"{n} ({why[n]})" for n in missing)]


def _member_offsets(members: Sequence[Member]) -> dict[str, list[float]]:
    """Every member's calibration offsets (checked before predicting), averaged."""
    parts = []
    for m in members:
        if m.run_dir is None:
            raise CheckpointError(f"calibrate=true: {m.ckpt} is not inside a run folder, so its "
                                  "calibration.json is unknown; give the run folder as ckpt=")
        parts.append(calibration.load(m.run_dir))
    return calibration.mean_offsets(parts)


def predict_exported_probs(model: ExportedModel, data_root: str | os.PathLike,
                           tta: bool = False, batch_size: int = 128, num_workers: int = 2,
                           face_boxes: str | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """(eval table in info.csv order, (N, 18) probabilities) of a ``maskcls.export`` model,
    fed by the pipeline its metadata records."""
    pipeline = pipeline_from_state(model.metadata["pipeline"], model.path, face_boxes)
    eval_df = cat.scan_eval(data_root)
    if pipeline.boxes is not None:
        pipeline.boxes.check_covers(eval_df["path"].tolist())
    loader = _eval_loader(eval_df, pipeline, batch_size, num_workers)
    out = []
    for batch in progress_bar(loader, f"Predicting {model.path.name}"):
        pixels = batch[0].numpy()
        prob = model.run(pixels)
        if tta:
            prob = (prob + model.run(pixels[..., ::-1])) / 2
        out.append(prob)
    return eval_df, np.concatenate(out)


@dataclass
class Source:
    """What ``predict`` reads: checkpoints (``members``) or one exported model."""

    members: list[Member]
    exported: ExportedModel | None
    folder: Path                             # where the submission goes by default
    offsets: dict[str, list[float]] | None   # calibration offsets to apply (calibrate=true)
    data_roots: set[str]                     # the data the models were trained on
    inputs: list[Path]                       # files prediction reads: never an output
    notes: list[str] = field(default_factory=list)  # what the user should know

    @classmethod
    def resolve(cls, ckpt: str | None, model_file: str | None, calibrate: bool) -> Source:
        if (ckpt is None) == (model_file is None):
            raise ConfigError("give either ckpt=<run folder | multirun folder | .ckpt> or "
                              "model_file=<.onnx | .pt from python -m maskcls.export>"
                              + (", not both" if ckpt is not None else ""))
        if model_file is not None:
            exported = load_exported(model_file)
            offsets = exported.metadata.get("calibration")
            if calibrate and offsets is not None:
                offsets = calibration.check_offsets(offsets, f"model_file={model_file}")
            if calibrate and offsets is None:
                raise ConfigError(f"calibrate=true: {model_file} carries no calibration "
                                  "offsets (its run had no calibration.json); predict without "
                                  "calibrate")
            return cls([], exported, exported.path.parent, offsets if calibrate else None,
                       {exported.metadata.get("data_root")} - {None}, [exported.path])
        members, folder = find_checkpoints(str(ckpt))
        return cls(members, None, folder, _member_offsets(members) if calibrate else None,
                   {trained_data_root(m.run_dir) for m in members} - {None},
                   [m.ckpt for m in members]
                   + [m.run_dir / rf.CONFIG for m in members if m.run_dir is not None],
                   _missing_jobs(folder, members))


def predict(ckpt: str | None = None, data_root: str | None = None, output: str | None = None,
            tta: bool = False, save_probs: bool = False, batch_size: int = 128,
            num_workers: int = 2, accelerator: str = "auto", calibrate: bool = False,
            face_boxes: str | None = None, model_file: str | None = None) -> dict[str, Any]:
    """Write ``submission.csv`` (and optionally the probabilities) from checkpoints (``ckpt``)
    or an exported model (``model_file``); returns what was done, with scores when
    ``eval/answers.csv`` exists. ``calibrate`` applies the decision offsets of each member's
    run (``calibration.json``; an ensemble uses their mean; an exported model carries its
    run's)."""
    quiet_libraries()
    source = Source.resolve(ckpt, model_file, calibrate)
    members, offsets = source.members, source.offsets
    if data_root is None:
        if len(source.data_roots) != 1:
            raise ConfigError("data.root is not known from the run's config.yaml "
                              f"(found {sorted(source.data_roots) or 'none'}); pass "
                              "data.root=/path/to/data")
        data_root = next(iter(source.data_roots))
    out = Path(output).expanduser() if output else source.folder / rf.SUBMISSION
    prob_path = out.with_name(out.stem + "_probs.csv")
    for target in (out, prob_path) if save_probs else (out,):
        check_output(target, "output", ".csv", source.inputs, [Path(data_root).expanduser()])
    seen_eval: set[str] = set()
    if source.exported is not None:
        eval_df, only = predict_exported_probs(source.exported, data_root, tta, batch_size,
                                               num_workers, face_boxes)
        probs = [only]
        seen_eval |= {source.exported.metadata.get("eval_data")} - {None}
    else:
        eval_df, probs = predict_probs(members, data_root, tta, batch_size, num_workers,
                                       accelerator, face_boxes, seen_eval)
    mean = np.mean(probs, axis=0)
    raw_pred = mean.argmax(1)
    if offsets is not None:
        mean = calibration.apply(mean, offsets)
    sub = pd.DataFrame({"ImageID": eval_df["ImageID"], "ans": mean.argmax(1)})
    atomic.write_csv(sub, out)
    result: dict[str, Any] = {"submission": out, "rows": len(sub), "members": len(probs),
                              "notes": list(source.notes)}
    digest = eval_fingerprint(data_root)
    if seen_eval and digest not in seen_eval:
        result["notes"].append(
            f"the eval set at {data_root} (eval/info.csv digest {digest}) is not the one the "
            f"model's run saw ({', '.join(sorted(seen_eval))}); predicted as asked")
    if save_probs:
        table = pd.concat([eval_df[["ImageID"]],
                           pd.DataFrame(mean, columns=[f"prob_{c}" for c in range(mean.shape[1])])],
                          axis=1)
        atomic.write_csv(table, prob_path, float_format="%.6f")
        result["probs"] = prob_path
    answers_path = Path(data_root) / "eval" / "answers.csv"
    if answers_path.exists():
        try:
            truth = read_answers(answers_path, eval_df["ImageID"])
        except DataLayoutError as e:  # the submission stands; only the local score is skipped
            result["notes"].append(f"not scored: {e}")
            return result
        result["score"] = score(sub["ans"].to_numpy(), truth)
        if offsets is not None:
            result["uncalibrated_score"] = score(raw_pred, truth)
        if len(members) > 1:
            result["member_scores"] = [score(p.argmax(1), truth) for p in probs]
    return result


def read_answers(path: Path, image_ids: pd.Series) -> np.ndarray:
    """The true class of every eval image, in ``image_ids`` order, from an ``answers.csv``
    (``ImageID,ans``; the synthetic tree writes one)."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataLayoutError(f"{path} is not a readable CSV ({str(e).splitlines()[0][:120]})"
                              ) from None
    if not {"ImageID", "ans"} <= set(table.columns):
        raise DataLayoutError(f"{path} has no ImageID and ans columns")
    ans = pd.to_numeric(table["ans"], errors="coerce")
    bad = ans.isna() | (ans % 1 != 0) | (ans < 0) | (ans >= labels.NUM_CLASSES)
    if bad.any():
        raise DataLayoutError(f"{path}: ans {table['ans'][bad].iloc[0]!r} is not a class "
                              f"0..{labels.NUM_CLASSES - 1} ({int(bad.sum())} such row(s))")
    twice = table["ImageID"][table["ImageID"].duplicated()]
    if len(twice):
        raise DataLayoutError(f"{path}: ImageID {twice.iloc[0]!r} is listed twice")
    truth = pd.Series(ans.to_numpy(), index=table["ImageID"]).reindex(image_ids)
    if truth.isna().any():
        raise DataLayoutError(f"{path} has no answer for {int(truth.isna().sum())} of the "
                              f"{len(truth)} eval images")
    return truth.to_numpy().astype(np.int64)
