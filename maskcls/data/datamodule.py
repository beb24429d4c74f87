"""LightningDataModule: the one place where catalog, split, sampling and transforms meet."""

from __future__ import annotations

import logging
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
from maskcls.config import check_value
from maskcls.data import catalog as cat
from maskcls.data.batch_transforms import BatchTransform
from maskcls.data.cache import disk_cache, ram_cache
from maskcls.data.dataset import ImageDataset
from maskcls.data.fingerprint import eval_fingerprint, file_digest, people_digest
from maskcls.data.mixing import MixBatch
from maskcls.data.parallel import decode_workers
from maskcls.data.pipeline import Pipeline
from maskcls.data.sampling import Sampling
from maskcls.data.seeding import seed_rngs
from maskcls.data.settings import Loading, check_modes
from maskcls.data.smote import append_smote
from maskcls.data.sources import Sources
from maskcls.data.splits import Split
from maskcls.data.transforms import IMAGENET_MEAN, IMAGENET_STD, AugmentConfig, mean_std
from maskcls.errors import ConfigError
from maskcls.synth import SynthConfig, ensure_synthetic

log = logging.getLogger(__name__)


def data_root(root: str | Path) -> Path:
    """``data.root`` as an absolute path (``~`` expanded)."""
    return Path(root).expanduser().absolute()


class MaskDataModule(pl.LightningDataModule):
    """Train and validation loaders over a competition tree's ``train/`` (prediction reads
    ``eval/`` through ``maskcls.inference``), composed of the owners of each step: where the
    rows come from (``Sources``), who validates (``Split``), what an epoch draws
    (``Sampling``), how an image becomes pixels (``Pipeline``), how pixels are kept and
    loaded (``Loading``) and how a batch is augmented (``AugmentConfig``). ``from_keys``
    builds it from the ``data`` config node's keys.

    Args:
        root: data root holding ``train/`` (and ``eval/`` for prediction).
        normalize: ``imagenet`` or ``{mean, std}`` (given to ``pipeline``), or ``dataset``:
            computed on the training split when it is set up.
        age_bounds: age-group bounds, default ``[30, 60]``.
        synthetic: if given, ``prepare_data`` generates that tree at ``root`` when ``root``
            does not exist yet.
        seed: the run's seed (the augmentation's random streams per epoch).
        age_sigma: > 0 trains on soft age groups (``labels.soft_age_targets``).
    """

    def __init__(self, root: str | Path, *, pipeline: Pipeline | None = None,
                 split: Split | None = None, sampling: Sampling | None = None,
                 loading: Loading | None = None, sources: Sources | None = None,
                 augment: AugmentConfig | None = None,
                 normalize: str | Mapping[str, Sequence[float]] = "imagenet",
                 age_bounds: Sequence[int] = labels.DEFAULT_AGE_BOUNDS,
                 synthetic: SynthConfig | None = None, seed: int = 0,
                 age_sigma: float = 0.0) -> None:
        super().__init__()
        self.root = data_root(root)
        self.pipeline = pipeline or Pipeline((128, 96))
        self.split, self.sampling = split or Split(), sampling or Sampling()
        self.loading, self.sources = loading or Loading(), sources or Sources()
        self.augment = augment or AugmentConfig()
        self.normalize, self.age_bounds = normalize, tuple(age_bounds)
        self.age_sigma = float(age_sigma)
        self.synthetic, self.seed = synthetic, seed
        self.catalog: pd.DataFrame | None = None
        self.fingerprint: dict[str, Any] | None = None  # of the training tree, once scanned
        self.train_rows: np.ndarray | None = None
        self.val_rows: np.ndarray | None = None
        self._cache: torch.Tensor | None = None
        self._build_batch_transforms()

    @classmethod
    def from_keys(
        cls,
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
        age_sigma: float = 0.0,
        pin_memory: bool | None = None,
        seed: int = 0,
        verify: bool = False,
        pseudo_labels: str | None = None,
        pseudo_threshold: float = 0.9,
        face_boxes: str | None = None,
        face_margin: float = 0.25,
    ) -> MaskDataModule:
        """The datamodule of a ``data`` config node (``conf/data``, whose comments say what
        each key does), every value checked before any data is read."""
        check_modes(cache, normalize, smote, age_bounds)
        check_value("data.age_sigma", age_sigma, "number", 0, 10)
        root_path = data_root(root)
        synth = SynthConfig(**synthetic) if synthetic else None
        if synth is not None:
            synth.check()
        loading = Loading.from_keys(root_path, batch_size, num_workers, pin_memory, cache,
                                    cache_dir)
        split = Split(val_ratio, n_folds, fold, split_seed)
        sampling = Sampling(**{"keep_masked": 5, "resample_each_epoch": True,
                               **(undersample or {})}, oversample=oversample, smote=smote,
                            seed=Sampling.draw_seed(split_seed, seed))
        augment_cfg = AugmentConfig(**(augment or {}))
        given = (normalize["mean"], normalize["std"]) if isinstance(normalize, Mapping) \
            else (IMAGENET_MEAN, IMAGENET_STD)
        pipeline = Pipeline(image_size, center_crop, *given,
                            face_boxes=face_boxes, face_margin=face_margin)
        sources = Sources(corrections, pseudo_labels, pseudo_threshold, verify)
        sources.check(root_path)
        return cls(root_path, pipeline=pipeline, split=split, sampling=sampling,
                   loading=loading, sources=sources, augment=augment_cfg, normalize=normalize,
                   age_bounds=age_bounds, synthetic=synth, seed=seed, age_sigma=age_sigma)

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
        rows = self.sources.rows(self.root, self.age_bounds, self.split,
                                 self.loading.num_workers)
        self.catalog, self.fingerprint = rows.catalog, rows.fingerprint
        self.train_rows, self.val_rows = rows.train_rows, rows.val_rows
        paths = self.catalog["path"].tolist()
        if self.pipeline.boxes is not None:
            self.pipeline.boxes.check_covers(paths)
        workers = decode_workers(self.loading.num_workers, len(paths))
        if self.loading.cache == "ram":
            self._cache = ram_cache(paths, self.pipeline, workers)
        elif self.loading.cache == "disk":
            self._cache = disk_cache(paths, self.pipeline, workers, self.loading.cache_dir,
                                     variant=str(self.root))
        if self.sampling.smote:  # synthetic rare-class images as extra training rows
            self.catalog, self.train_rows, self._cache = append_smote(
                self.catalog, self.train_rows, self._cache, seed=self.sampling.seed)
            paths = self.catalog["path"].tolist()
        # One dataset of uint8 pixels serves both stages; the batch transforms differ.
        self.dataset = ImageDataset(paths, self.catalog["label"].to_numpy(), self.pipeline,
                                    self._cache)
        # recorded age per row, for model.age_regression; NaN where none was recorded
        ages = self.catalog["age"].to_numpy(dtype=np.float32)
        self.ages = torch.from_numpy(np.where(ages >= 0, ages, np.nan).astype(np.float32))
        self._set_normalisation()

    def _set_normalisation(self) -> None:
        if self.normalize == "dataset":
            rows = self.train_rows
            if self._cache is not None:
                mean, std = mean_std(self._cache[torch.as_tensor(rows)])
            else:  # a fixed sample of 512 training images is plenty for three numbers
                rng = np.random.default_rng(self.split.seed)
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
        runs to measure FLOPs) is normalised as in validation. A training batch gains each
        image's recorded age (NaN: none; mixed as the images are), for the age-regression
        head; with ``data.age_sigma`` the targets' age part is spread over the age groups by
        that age (``labels.soft_age_targets``)."""
        if isinstance(batch, torch.Tensor):
            return self.eval_transform.to(batch.device)(batch)
        x, y, index = batch
        if self.trainer is None or not self.trainer.training:
            return self.eval_transform.to(x.device)(x), y, index
        x = self.train_transform.to(x.device)(x)
        ages = self.ages[index.cpu()].to(x.device)
        if self.age_sigma:  # targets become class probabilities, the age part soft
            y = labels.soft_age_targets(y, ages, self.age_bounds, self.age_sigma)
        if self.mix is not None:
            x, y, ages = self.mix(x, y, ages)
        return x, y, index, ages

    # ------------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint, so prediction rebuilds the exact eval pipeline (the
        normalisation may have been computed from the training split)."""
        return {**self.pipeline.to_state(), "age_bounds": list(self.age_bounds),
                "split": self.split.identity(), "data": self.fingerprint,
                "eval_data": eval_fingerprint(self.root),
                "val_people": self._val_people_digest(),
                "corrections": self._corrections_digest()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """On resume: refuse weights trained on another split. Carrying a model from one fold
        to the next trains it on the next fold's validation people."""
        saved = state.get("split")
        if saved is not None and saved != self.split.identity():
            raise ConfigError(f"the checkpoint was trained on split {saved}, this run uses "
                             f"{self.split.identity()}; a fold must start from fresh weights. "
                             "Drop ckpt_path, or resume with the checkpoint's own split.")
        people = state.get("val_people")
        if people is not None and self.catalog is not None and \
                people != self._val_people_digest():
            raise ConfigError(
                "the checkpoint was validated on other people than this run's split (same "
                "split settings; the labels it is stratified on differ: data.corrections or "
                "the tree changed), so its weights have seen this run's validation people. "
                "Resume with the data and corrections it started on, or start a new run")
        if "corrections" in state and state["corrections"] != self._corrections_digest():
            log.warning("data.corrections differs from the one the checkpoint's run used: "
                        "its labels have changed since (the validation people are the same)")
        self.pipeline.check_boxes_unchanged(state)
        self.pipeline = self.pipeline.with_normalisation(state["mean"], state["std"])
        self._build_batch_transforms()

    def _corrections_digest(self) -> str | None:
        fixes = self.sources.corrections
        return file_digest(fixes) if fixes else None

    def _val_people_digest(self) -> str | None:
        """Which people validate (a digest of their ids), recorded in every checkpoint."""
        if self.catalog is None or self.val_rows is None:
            return None
        return people_digest(self.catalog["person_id"].iloc[self.val_rows].astype(str))

    # ------------------------------------------------------------------------------ facts
    @property
    def class_counts(self) -> list[int]:
        """Images per class in one training epoch, after under- and oversampling: the
        distribution the loss is trained on (``keep_masked=1`` makes the mask task 1:1:1, so
        weights from the split's 5:1:1 would push every prediction away from a mask)."""
        sampler = self.sampling.sampler(self.catalog.iloc[self.train_rows])
        return np.rint(sampler.class_counts()).astype(int).tolist()

    @property
    def val_catalog(self) -> pd.DataFrame:
        """Validation rows, in the order the val loader serves them."""
        return self.catalog.iloc[self.val_rows]

    # ---------------------------------------------------------------------------- loaders
    def _loader(self, dataset: Any, **kw: Any) -> DataLoader:
        workers = self.loading.num_workers
        return DataLoader(dataset, batch_size=self.loading.batch_size, num_workers=workers,
                          pin_memory=self.loading.pin_memory,
                          persistent_workers=workers > 0, **kw)

    def train_dataloader(self) -> DataLoader:
        train = self.catalog.iloc[self.train_rows]
        sampler = self.sampling.sampler(train, epoch_fn=self._current_epoch,
                                        on_epoch_start=self._reseed)
        # Drop the ragged last batch: a batch of one breaks BatchNorm, and the sampler draws
        # anew every epoch, so nothing is lost for good.
        return self._loader(self.dataset, sampler=sampler,
                            drop_last=len(sampler) > self.loading.batch_size)

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
