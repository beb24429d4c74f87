"""Trained models -> a competition submission: what ``predict.py`` does, importable.

A checkpoint knows its backbone (hyper-parameters) and its eval pipeline (the datamodule state:
image size, face crop, normalisation), and its run folder knows the data it was trained on, so
prediction never falls back to defaults. Several checkpoints (a k-fold sweep) are ensembled by
averaging their softmax probabilities. An exported model carries the same facts in its file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from maskcls import atomic, labels
from maskcls.config import PredictSettings
from maskcls.data import catalog as cat
from maskcls.data.fingerprint import eval_fingerprint, file_digest
from maskcls.errors import CheckpointError, ConfigError, DataLayoutError
from maskcls.export.reader import ExportedModel, load_exported
from maskcls.inference import calibration
from maskcls.inference.scorers import (
    Scorer,
    checkpoint_scorer,
    device_for,
    eval_probabilities,
    exported_scorer,
)
from maskcls.model.metrics import score
from maskcls.run import folder as rf
from maskcls.run.checkpoints import load_checkpoint
from maskcls.run.logs import quiet_libraries
from maskcls.run.output_paths import check_output, output_lock
from maskcls.run.trained import (
    Member,
    eval_pipeline,
    find_checkpoints,
    load_model,
    missing_jobs,
    pipeline_from_state,
    recorded_eval_set,
    trained_data_root,
)


@dataclass
class Source:
    """What ``predict`` reads: checkpoints (``members``) or one exported model."""

    members: list[Member]
    exported: ExportedModel | None
    folder: Path | None                      # where the submission goes by default
    offsets: dict[str, list[float]] | None   # calibration offsets to apply (calibrate=true)
    data_roots: set[str]                     # the data the models were trained on
    inputs: list[Path]                       # files prediction reads: never an output
    notes: list[str] = field(default_factory=list)  # what the user should know
    seen_eval: set[str] = field(default_factory=set)  # eval sets the models' runs saw

    @classmethod
    def resolve(cls, ckpt: str | Sequence[str] | None, model_file: str | None,
                calibrate: bool) -> Source:
        if (ckpt is None) == (model_file is None):
            raise ConfigError("give either ckpt=<run folder | multirun folder | .ckpt> or "
                              "model_file=<.onnx | .pt from python -m maskcls.export>"
                              + (", not both" if ckpt is not None else ""))
        if model_file is not None:
            exported = load_exported(model_file)
            offsets = exported.metadata.get("calibration") if calibrate else None
            if calibrate and offsets is None:
                raise ConfigError(f"calibrate=true: {model_file} carries no calibration "
                                  "offsets (its run had no calibration.json); predict without "
                                  "calibrate")
            if offsets is not None:
                offsets = calibration.check_offsets(offsets, f"model_file={model_file}")
            return cls([], exported, exported.path.parent, offsets,
                       {exported.metadata.get("data_root")} - {None}, [exported.path],
                       seen_eval={exported.metadata.get("eval_data")} - {None})
        if isinstance(ckpt, str):
            members, folder = find_checkpoints(ckpt)
            notes = missing_jobs(folder, members)
        else:  # several runs (or sweeps): one ensemble of all their checkpoints
            found = [find_checkpoints(str(c)) for c in ckpt]
            members = [m for ms, _ in found for m in ms]
            notes = [n for ms, f in found for n in missing_jobs(f, ms)]
            members, repeated = _distinct(members)
            notes += repeated
            folder = None
            _name_uniquely(members)
        return cls(members, None, folder, _offsets(members, folder) if calibrate else None,
                   {trained_data_root(m.run_dir) for m in members} - {None},
                   [m.ckpt for m in members]
                   + [m.run_dir / rf.CONFIG for m in members if m.run_dir is not None], notes)

    def crop_views(self, tta: bool, asked: float | None) -> float | None:
        """The five crops' share predicted with: ``asked`` (0: none), or with None the one
        every member's run trained for (``maskcls.run.results.crop_views``: after zoom or
        shift); none for a model whose training is not recorded, or with ``tta`` off."""
        if asked is not None:
            return asked or None
        if not tta or self.exported is not None:
            return None
        from maskcls.run.received import load_config
        from maskcls.run.results import crop_views

        shares = set()
        for m in self.members:
            if m.run_dir is None:
                return None
            config = load_config(m.run_dir / rf.CONFIG, f"ckpt={m.run_dir}")
            shares.add(crop_views(config.get("augment")))
        return shares.pop() if len(shares) == 1 else None

    def scorers(self, face_boxes: str | None, accelerator: str) -> list[Scorer]:
        """Every model, loaded and checked (with its pipeline) before any image is read."""
        if self.exported is not None:
            pipeline = pipeline_from_state(self.exported.metadata["pipeline"],
                                           self.exported.path, face_boxes)
            return [exported_scorer(self.exported, pipeline)]
        device, out = device_for(accelerator), []
        for m in self.members:
            ckpt = load_checkpoint(m.ckpt)
            self.seen_eval |= {recorded_eval_set(ckpt)} - {None}
            out.append(checkpoint_scorer(m.name, load_model(ckpt, m.ckpt),
                                         eval_pipeline(ckpt, m.ckpt, face_boxes), device))
        return out


def _distinct(members: list[Member]) -> tuple[list[Member], list[str]]:
    """Each model once: a run given twice, a run and its copy, or a sweep and one of its own
    jobs are the same weights (the same checkpoint digest), which would count double."""
    seen: dict[str, Member] = {}
    notes = []
    for m in members:
        digest = file_digest(m.ckpt)
        if digest in seen:
            notes.append(f"{m.ckpt} is the same model as {seen[digest].ckpt}; counted once")
        else:
            seen[digest] = m
    return list(seen.values()), notes


def _name_uniquely(members: list[Member]) -> None:
    """Members of several runs are named by their run folder's path (job "0" of two sweeps
    would otherwise share a name)."""
    for m in members:
        m.label = str(m.run_dir or m.ckpt)


def _offsets(members: list[Member], folder: Path | None) -> dict[str, list[float]]:
    """The calibration offsets of the ``ckpt=`` folder itself (a run's, or those
    ``python -m maskcls.submit`` fits on a k-fold's out-of-fold predictions), else every
    member's (checked before predicting), averaged."""
    if folder is not None and (folder / rf.CALIBRATION).is_file():
        return calibration.load(folder / rf.CALIBRATION)
    parts = []
    for m in members:
        if m.run_dir is None:
            raise CheckpointError(f"calibrate=true: {m.ckpt} is not inside a run folder, so its "
                                  "calibration.json is unknown; give the run folder as ckpt=")
        parts.append(calibration.load(m.run_dir / rf.CALIBRATION))
    return calibration.mean_offsets(parts)


def predict_probs(scorers: list[Scorer], data_root: str | os.PathLike, tta: bool = False,
                  batch_size: int = 128, num_workers: int = 2, tta_crop: float | None = None
                  ) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """(eval table in info.csv order, one (N, 18) probability array per scorer), after
    checking that the eval set is there and every face-cropping scorer has its boxes."""
    eval_df = cat.scan_eval(data_root)
    for s in scorers:
        if s.pipeline.boxes is not None:
            s.pipeline.boxes.check_covers(eval_df["path"].tolist())
    return eval_df, eval_probabilities(scorers, eval_df, tta, batch_size, num_workers,
                                       tta_crop)


def predict(settings: PredictSettings) -> dict[str, Any]:
    """Write ``submission.csv`` (and optionally the probabilities) from checkpoints
    (``settings.ckpt``) or an exported model (``model_file``); returns what was done, with
    scores when ``eval/answers.csv`` exists. ``calibrate`` applies the decision offsets of each
    member's run (``calibration.json``; an ensemble uses its folder's own file where it has one,
    else the members' mean; an exported model carries its run's). ``ckpt`` may list several
    runs (ensembled like the folds of a sweep; give ``output``). An existing output is replaced
    only with ``overwrite``."""
    quiet_libraries()
    s = settings
    ckpt = s.ckpt if isinstance(s.ckpt, str | None) else [str(c) for c in s.ckpt]
    source = Source.resolve(ckpt, s.model_file, s.calibrate)
    data_root = s.data.root
    if data_root is None:
        if len(source.data_roots) != 1:
            raise ConfigError("data.root is not known from the run's config.yaml "
                              f"(found {sorted(source.data_roots) or 'none'}); pass "
                              "data.root=/path/to/data")
        data_root = next(iter(source.data_roots))
    if s.output is None and source.folder is None:
        raise ConfigError("ckpt= lists several runs: give output=<file.csv> for their ensemble")
    out = Path(s.output).expanduser() if s.output else source.folder / rf.SUBMISSION
    prob_path = out.with_name(out.stem + "_probs.csv")
    for target in (out, prob_path) if s.save_probs else (out,):
        check_output(target, "output", ".csv", source.inputs, [Path(data_root).expanduser()],
                     s.overwrite)
    with output_lock(out, "output"):
        return _predict_into(source, out, prob_path, data_root, s)


def _predict_into(source: Source, out: Path, prob_path: Path, data_root: str | os.PathLike,
                  s: PredictSettings) -> dict[str, Any]:
    scorers = source.scorers(s.face_boxes, s.accelerator)
    crop = source.crop_views(s.tta, s.tta_crop)
    eval_df, probs = predict_probs(scorers, data_root, s.tta, s.batch_size, s.num_workers, crop)
    mean = np.mean(probs, axis=0)
    raw_pred = mean.argmax(1)
    if source.offsets is not None:
        mean = calibration.apply(mean, source.offsets)
    sub = pd.DataFrame({"ImageID": eval_df["ImageID"], "ans": mean.argmax(1)})
    atomic.write_csv(sub, out)
    result: dict[str, Any] = {"submission": out, "rows": len(sub), "members": len(probs),
                              "tta_crop": crop,
                              "member_names": [m.name for m in scorers],
                              "notes": [*source.notes, *_eval_set_note(source, data_root)]}
    if s.save_probs:
        table = pd.concat([eval_df[["ImageID"]],
                           pd.DataFrame(mean, columns=[f"prob_{c}" for c in range(mean.shape[1])])],
                          axis=1)
        atomic.write_csv(table, prob_path, float_format="%.6f")
        result["probs"] = prob_path
    result.update(_scores(Path(data_root), eval_df, sub["ans"].to_numpy(), raw_pred, probs,
                          source.offsets is not None, result["notes"]))
    return result


def _eval_set_note(source: Source, data_root: str | os.PathLike) -> list[str]:
    """Another eval set than the run's is a legitimate use of predict.py: said, not refused."""
    digest = eval_fingerprint(data_root)
    # runs of earlier versions recorded the file's bytes, not its table
    raw = file_digest(Path(data_root) / "eval" / "info.csv")
    if not source.seen_eval or {digest, raw} & source.seen_eval:
        return []
    return [f"the eval set at {data_root} (eval/info.csv digest {digest}) is not the one the "
            f"model's run saw ({', '.join(sorted(source.seen_eval))}); predicted as asked"]


def _scores(data_root: Path, eval_df: pd.DataFrame, pred: np.ndarray, raw_pred: np.ndarray,
            probs: list[np.ndarray], calibrated: bool, notes: list[str]) -> dict[str, Any]:
    """Scores against ``eval/answers.csv`` where there is one (the synthetic tree writes it);
    a malformed one is a note, and the submission stands."""
    path = data_root / "eval" / "answers.csv"
    if not path.exists():
        return {}
    try:
        truth = read_answers(path, eval_df["ImageID"])
    except DataLayoutError as e:
        notes.append(f"not scored: {e}")
        return {}
    result = {"score": score(pred, truth)}
    if calibrated:
        result["uncalibrated_score"] = score(raw_pred, truth)
    if len(probs) > 1:
        result["member_scores"] = [score(p.argmax(1), truth) for p in probs]
    return result


def read_answers(path: Path, image_ids: pd.Series) -> np.ndarray:
    """The true class of every eval image, in ``image_ids`` order, from an ``answers.csv``
    (``ImageID,ans``)."""
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

