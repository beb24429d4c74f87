"""LightningDataModule: the one place where catalog, split, sampling and transforms meet."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Subset

from maskcls import labels
from maskcls.data import catalog as cat
from maskcls.data.batch_transforms import BatchTransform
from maskcls.data.cache import disk_cache, ram_cache
from maskcls.data.corrections import apply_corrections
from maskcls.data.dataset import ImageDataset, check_decodable
from maskcls.data.fingerprint import (
    eval_fingerprint,
    file_digest,
    people_digest,
    train_fingerprint,
)
from maskcls.data.mixing import MixBatch
from maskcls.data.parallel import decode_workers
from maskcls.data.pipeline import Pipeline
from maskcls.data.pseudo import check_pseudo_args, pseudo_rows
from maskcls.data.sampling import TrainSampler, check_sampling_args
from maskcls.data.seeding import seed_rngs
from maskcls.data.settings import cache_folder, check_modes, loader_workers
from maskcls.data.smote import append_smote
from maskcls.data.splits import check_split_args, holdout_split, kfold_split
from maskcls.data.transforms import IMAGENET_MEAN, IMAGENET_STD, AugmentConfig, mean_std
from maskcls.errors import ConfigError
from maskcls.synth import SynthConfig, ensure_synthetic

log = logging.getLogger(__name__)


class MaskDataModule(pl.LightningDataModule):
    """Train and validation loaders over a competition tree's ``train/`` (prediction reads
    ``eval/`` through ``maskcls.inference``).

    Args:
        root: data root holding ``train/`` (and ``eval/`` for prediction).
        synthetic: if given, the synthetic tree's settings; ``prepare_data`` generates it at
            ``root`` when ``root`` does not exist yet.
        image_size: ``[H, W]`` fed to the model.
        center_crop: ``[h, w]`` fractions of the photo kept by a centre crop before resizing
            (part of the eval pipeline: prediction crops the same).
        num_workers: DataLoader worker processes, or ``auto``.
        val_ratio: people held out when ``n_folds`` is unset.
        n_folds, fold: person-level stratified k-fold; ``fold`` is the validation fold.
        split_seed: seed of the split (independent of the training seed, so several seeds
            can be compared on one split).
        undersample: ``keep_masked`` (1..5) and ``resample_each_epoch``.
        oversample: ``none``, ``weighted`` or ``repeat`` (see ``maskcls.data.sampling``).
        smote: add synthetic rare-class images to the training rows (``maskcls.data.smote``),
            drawn like the others.
        augment: an ``AugmentConfig`` mapping (``conf/augment``).
        normalize: ``imagenet``, ``dataset`` (computed on the training split) or
            ``{mean: [...], std: [...]}``.
        cache: ``ram`` decodes and resizes every image once into memory, ``disk`` into a
            memory-mapped file under ``cache_dir`` reused across runs, ``none`` decodes every
            epoch (see ``maskcls.data.cache``).
        cache_dir: where ``cache=disk`` keeps its files (default ``<root>/.maskcls_cache``).
        corrections: optional CSV of label fixes (``person_id,field,value``).
        age_bounds: age-group bounds, default ``[30, 60]``.
        seed: the run's seed; with ``split_seed`` it fixes which shots each epoch samples.
        verify: decode every image once before training and list all unreadable files.
        pseudo_labels: a ``*_probs.csv`` of ``predict.py save_probs=true`` on this root's eval
            set: its images whose top probability reaches ``pseudo_threshold`` join the
            training rows with their predicted class (never validation).
        face_boxes: a face-box CSV (``python -m maskcls.faces ROOT``, or any detector's in the
            same format): every image is cropped to its box grown by ``face_margin``, in
            training and, through the checkpoint, in prediction.
    """

    def __init__(
        self,
        root: str,
        synthetic: Mapping[str, Any] | None = None,
        image_size: Sequence[int] = (128, 96),
        center_crop: Sequence[float] | None = None,
        batch_size: int = 64,
        num_workers: int | str = "auto",
        val_ratio: float = 0.2,
        n_folds: int | None = None,
        fold: int = 0,
        split_seed: int = 42,
        undersample: Mapping[str, Any] | None = None,
        oversample: str = "none",
        smote: bool = False,
        augment: Mapping[str, Any] | None = None,
        normalize: str | Mapping[str, Sequence[float]] = "imagenet",
        cache: str = "ram",
        cache_dir: str | None = None,
        corrections: str | None = None,
        age_bounds: Sequence[int] = labels.DEFAULT_AGE_BOUNDS,
        pin_memory: bool | None = None,
        seed: int = 0,
        verify: bool = False,
        pseudo_labels: str | None = None,
        pseudo_threshold: float = 0.9,
        face_boxes: str | None = None,
        face_margin: float = 0.25,
    ) -> None:
        super().__init__()
        check_modes(cache, normalize, smote, age_bounds)
        self.root = Path(os.path.expanduser(str(root))).absolute()
        self.synthetic = SynthConfig(**synthetic) if synthetic else None
        if self.synthetic is not None:
            self.synthetic.check()
        self.batch_size, self.num_workers = batch_size, loader_workers(num_workers, cache)
        check_split_args(val_ratio, n_folds, fold)
        self.val_ratio, self.n_folds, self.fold = val_ratio, n_folds, fold
        self.split_seed, self.seed, self._draw_seed = split_seed, seed, split_seed * 100_003 + seed
        self.undersample = {"keep_masked": 5, "resample_each_epoch": True, **(undersample or {})}
        check_sampling_args(self.undersample["keep_masked"], oversample)
        self.oversample, self.smote = oversample, smote
        self.augment = AugmentConfig(**(augment or {}))
        given = (normalize["mean"], normalize["std"]) if isinstance(normalize, Mapping) \
            else (IMAGENET_MEAN, IMAGENET_STD)
        # image size, face crop and normalisation: checked here, before any data is read
        self.pipeline = Pipeline(image_size, center_crop, *given,
                                 face_boxes=face_boxes, face_margin=face_margin)
        self.normalize, self.cache_mode = normalize, cache
        self.cache_dir = cache_folder(cache, cache_dir, self.root)
        self.corrections, self.age_bounds, self.verify = corrections, tuple(age_bounds), verify
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        check_pseudo_args(pseudo_labels, pseudo_threshold, self.root)
        self.pseudo_labels, self.pseudo_threshold = pseudo_labels, pseudo_threshold
        self.catalog: pd.DataFrame | None = None
        self.fingerprint: dict[str, Any] | None = None  # of the training tree, once scanned
        self.train_rows: np.ndarray | None = None
        self.val_rows: np.ndarray | None = None
        self._cache: torch.Tensor | None = None
        self._build_batch_transforms()

    # ----------------------------------------------------------------------------- set-up
    def prepare_data(self) -> None:
        """Generate the synthetic tree on first use (one process generates, others wait); an
        existing tree must have been generated with the same settings."""
        if self.synthetic is not None:
            if not cat.has_train_images(self.root):
                log.info("generating the synthetic dataset at %s (data=synthetic without "
                         "data.root; MASKCLS_DATA_DIR or paths.data_dir moves it)",
                         self.root.absolute())
            ensure_synthetic(self.root, self.synthetic)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and self.catalog is None:
            self._setup_train()

    def _setup_train(self) -> None:
        df = cat.scan_train(self.root, self.age_bounds)
        self.fingerprint = train_fingerprint(self.root, df)
        if self.corrections:
            df = apply_corrections(df, self.corrections, self.age_bounds)
        if self.n_folds:
            train_ids, val_ids = kfold_split(df, self.n_folds, self.fold, self.split_seed)
        else:
            train_ids, val_ids = holdout_split(df, self.val_ratio, self.split_seed)
        if self.pseudo_labels:  # after the split: their own "people", in training only
            pseudo = pseudo_rows(self.pseudo_labels, self.root, self.pseudo_threshold)
            log.info("pseudo-labels: %d eval images reach p >= %s and join training",
                     len(pseudo), self.pseudo_threshold)
            df = pd.concat([df, pseudo], ignore_index=True)
            train_ids = set(train_ids) | set(pseudo["person_id"])
        self.catalog = df.reset_index(drop=True)
        if self.verify:
            self._verify(self.catalog["path"].tolist())
        self.train_rows = np.flatnonzero(self.catalog["person_id"].isin(train_ids).to_numpy())
        self.val_rows = np.flatnonzero(self.catalog["person_id"].isin(val_ids).to_numpy())
        paths = self.catalog["path"].tolist()
        if self.pipeline.boxes is not None:
            self.pipeline.boxes.check_covers(paths)
        workers = decode_workers(self.num_workers, len(paths))
        if self.cache_mode == "ram":
            self._cache = ram_cache(paths, self.pipeline, workers)
        elif self.cache_mode == "disk":
            self._cache = disk_cache(paths, self.pipeline, workers, self.cache_dir,
                                     variant=str(self.root))
        if self.smote:
            self._add_smote()
            paths = self.catalog["path"].tolist()
        # One dataset of uint8 pixels serves both stages; the batch transforms differ.
        self.dataset = ImageDataset(paths, self.catalog["label"].to_numpy(), self.pipeline,
                                    self._cache)
        self._set_normalisation()

    def _add_smote(self) -> None:
        """Synthetic rare-class images as extra training rows (``maskcls.data.smote``)."""
        self.catalog, self.train_rows, self._cache = append_smote(
            self.catalog, self.train_rows, self._cache, seed=self._draw_seed)

    def _verify(self, paths: list[str]) -> None:
        check_decodable(paths, decode_workers(self.num_workers, len(paths)))
        log.info("verified: all %d images decode", len(paths))

    def _set_normalisation(self) -> None:
        if self.normalize == "dataset":
            rows = self.train_rows
            if self._cache is not None:
                mean, std = mean_std(self._cache[torch.as_tensor(rows)])
            else:  # a fixed sample of 512 training images is plenty for three numbers
                rng = np.random.default_rng(self.split_seed)
                pick = rng.choice(rows, size=min(512, len(rows)), replace=False)
                mean, std = mean_std(self.dataset.pixels(i) for i in pick)
            self.pipeline = self.pipeline.with_normalisation(mean, std)
            log.info("normalisation from the training split: mean=%s std=%s",
                     [round(v, 4) for v in mean], [round(v, 4) for v in std])
        self._build_batch_transforms()

    def _build_batch_transforms(self) -> None:
        self.train_transform = BatchTransform(self.augment, self.pipeline.mean,
                                              self.pipeline.std)
        self.eval_transform = self.pipeline.normaliser()
        self.mix = MixBatch.from_config(self.augment)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment (training: then mixup / cutmix, targets become class probabilities) or
        only normalise (validation) the uint8 batch, on the device the model runs on. A bare
        pixel tensor (the model's ``example_input_array``, which Lightning's model summary
        runs to measure FLOPs) is normalised as in validation."""
        if isinstance(batch, torch.Tensor):
            return self.eval_transform.to(batch.device)(batch)
        x, y, index = batch
        if self.trainer is None or not self.trainer.training:
            return self.eval_transform.to(x.device)(x), y, index
        x = self.train_transform.to(x.device)(x)
        if self.mix is not None:
            x, y = self.mix(x, y)
        return x, y, index

    # ------------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint, so prediction rebuilds the exact eval pipeline (the
        normalisation may have been computed from the training split)."""
        return {**self.pipeline.to_state(), "age_bounds": list(self.age_bounds),
                "split": self._split_id(), "data": self.fingerprint,
                "eval_data": eval_fingerprint(self.root),
                "val_people": self._val_people_digest(),
                "corrections": file_digest(self.corrections) if self.corrections else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """On resume: refuse weights trained on another split. Carrying a model from one fold
        to the next trains it on the next fold's validation people."""
        saved = state.get("split")
        if saved is not None and saved != self._split_id():
            raise ConfigError(f"the checkpoint was trained on split {saved}, this run uses "
                             f"{self._split_id()}; a fold must start from fresh weights. "
                             "Drop ckpt_path, or resume with the checkpoint's own split.")
        people = state.get("val_people")
        if people is not None and self.catalog is not None and \
                people != self._val_people_digest():
            raise ConfigError(
                "the checkpoint was validated on other people than this run's split (same "
                "split settings; the labels it is stratified on differ: data.corrections or "
                "the tree changed), so its weights have seen this run's validation people. "
                "Resume with the data and corrections it started on, or start a new run")
        if "corrections" in state and state["corrections"] != (
                file_digest(self.corrections) if self.corrections else None):
            log.warning("data.corrections differs from the one the checkpoint's run used: "
                        "its labels have changed since (the validation people are the same)")
        self.pipeline.check_boxes_unchanged(state)
        self.pipeline = self.pipeline.with_normalisation(state["mean"], state["std"])
        self._build_batch_transforms()

    def _val_people_digest(self) -> str | None:
        """Which people validate (a digest of their ids), recorded in every checkpoint."""
        if self.catalog is None or self.val_rows is None:
            return None
        return people_digest(self.catalog["person_id"].iloc[self.val_rows].astype(str))

    def _split_id(self) -> dict[str, Any]:
        return {"n_folds": self.n_folds, "fold": self.fold if self.n_folds else None,
                "val_ratio": None if self.n_folds else self.val_ratio,
                "split_seed": self.split_seed}

    # ------------------------------------------------------------------------------ facts
    @property
    def class_counts(self) -> list[int]:
        """Images per class in one training epoch, after under- and oversampling: the
        distribution the loss is trained on (``keep_masked=1`` makes the mask task 1:1:1, so
        weights from the split's 5:1:1 would push every prediction away from a mask)."""
        sampler = TrainSampler(self.catalog.iloc[self.train_rows],
                               keep_masked=self.undersample["keep_masked"],
                               oversample=self.oversample, seed=self._draw_seed)
        return np.rint(sampler.class_counts()).astype(int).tolist()

    @property
    def val_catalog(self) -> pd.DataFrame:
        """Validation rows, in the order the val loader serves them."""
        return self.catalog.iloc[self.val_rows]

    # ---------------------------------------------------------------------------- loaders
    def _loader(self, dataset: Any, **kw: Any) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                          pin_memory=self.pin_memory,
                          persistent_workers=self.num_workers > 0, **kw)

    def train_dataloader(self) -> DataLoader:
        train = self.catalog.iloc[self.train_rows]
        sampler = TrainSampler(train, oversample=self.oversample,
                               seed=self._draw_seed,
                               epoch_fn=self._current_epoch, on_epoch_start=self._reseed,
                               **self.undersample)
        # Drop the ragged last batch: a batch of one breaks BatchNorm, and the sampler draws
        # anew every epoch, so nothing is lost for good.
        return self._loader(self.dataset, sampler=sampler,
                            drop_last=len(sampler) > self.batch_size)

    def _current_epoch(self) -> int:
        """The epoch about to be trained. On resume Lightning creates the train iterator (and
        worker processes prefetch its first batches) before ``current_epoch`` moves past the
        restored epoch; the loop's processed-epoch count is already right then."""
        if self.trainer is None:
            return 0
        return self.trainer.fit_loop.epoch_progress.current.processed

    def _reseed(self, epoch: int) -> None:
        seed_rngs(self.seed, epoch, self.trainer.global_rank if self.trainer is not None else 0)

    def val_dataloader(self) -> DataLoader:
        val = Subset(self.dataset, self.val_rows.tolist())
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:
            # Each image on exactly one rank: Lightning's default DistributedSampler pads with
            # repeats, which would count some images twice in the validation metrics.
            sampler = UnrepeatedDistributedSampler(val, num_replicas=trainer.world_size,
                                                   rank=trainer.global_rank, shuffle=False)
            return self._loader(val, sampler=sampler)
        return self._loader(val)


# Lightning stores the datamodule's state in a checkpoint under its class name.
DATAMODULE_KEY = MaskDataModule.__qualname__
