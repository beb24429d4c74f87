"""The typed schema of every config node: what each key holds, and its rule beside it.

A node is checked against the schema of its ``_target_`` (``BY_TARGET``), or by its place in the
run's config (``TrainConfig``, ``PredictSettings``, ``ExportSettings``). OmegaConf refuses a wrong
type or an unknown key; ``fields`` adds the ranges and choices. What maskcls's own classes check
when built (split, sampler, losses, augmentation, heads) is typed here, ranged there.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from maskcls.config.fields import Open, checked, choice, ranged
from maskcls.config.lightning import (
    check_accelerator,
    check_deterministic,
    check_devices,
    check_fast_dev_run,
    check_max_time,
    check_precision,
)
from maskcls.errors import ConfigError

SEED_MAX = 2**32 - 1
MAX_TAG = 64  # W&B's limit for one tag; MLflow's is larger


def tag_list(tags: Any) -> list[str]:
    """``tags=focal`` is one tag, ``tags=[a,b]`` two; each a text of 1-64 characters (W&B's)."""
    if tags is None:
        return []
    items = list(tags) if isinstance(tags, Sequence) and not isinstance(tags, str) else [tags]
    for t in items:
        if not isinstance(t, str | int | float) or not str(t).strip() or len(str(t)) > MAX_TAG:
            raise ConfigError(f"tags: {t!r} is not a tag; each tag is a text of 1 to {MAX_TAG} "
                              "characters, e.g. tags=[focal,fold-study]")
    return [str(t).strip() for t in items]


@dataclass
class PathsConfig:
    SOURCE: ClassVar[str] = "conf/paths"

    data_dir: str = "data"
    synthetic_dir: str = "data/synthetic"
    output_dir: str = "outputs"
    tracking_dir: str = "outputs"


@dataclass
class AugmentSchema:
    """``conf/augment``: ranges are ``maskcls.data.transforms.AugmentConfig``'s."""

    SOURCE: ClassVar[str] = "conf/augment"

    rotation: float = 10.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    sharpness: float = 0.0
    hflip: float = 0.5
    erasing: float = 0.0
    scale: float = 0.0
    translate: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    mix_prob: float = 1.0
    mix_switch: float = 0.5


@dataclass
class UndersampleSchema:
    SOURCE: ClassVar[str] = "data.undersample"

    keep_masked: int = 5
    resample_each_epoch: bool = True


@dataclass
class DataSchema:
    """``conf/data``: ``maskcls.data.datamodule.MaskDataModule.from_keys``."""

    _target_: str = "maskcls.data.datamodule.MaskDataModule.from_keys"
    root: str = "???"
    synthetic: Any = None  # maskcls.synth.SynthConfig checks its own keys and ranges
    image_size: list[int] = field(default_factory=lambda: [128, 96])
    center_crop: list[float] | None = None
    batch_size: int = ranged(64, low=1)
    num_workers: Any = "auto"  # auto or a count: maskcls.data.parallel.loader_workers
    val_ratio: float = 0.2
    n_folds: int | None = None
    fold: int = 0
    split_seed: int = ranged(42, low=0, high=SEED_MAX)
    undersample: UndersampleSchema | None = None
    oversample: str = "none"
    smote: bool = False
    augment: AugmentSchema | None = None
    normalize: Any = "imagenet"  # imagenet, dataset or {mean, std}
    cache: str = "ram"
    cache_dir: str | None = None
    corrections: str | None = None
    age_bounds: list[int] = field(default_factory=lambda: [30, 60])
    age_sigma: float = ranged(0.0, low=0, high=10)
    pin_memory: bool | None = None
    seed: int = 0
    verify: bool = False
    pseudo_labels: str | None = None
    pseudo_threshold: float = 0.9
    face_boxes: str | None = None
    face_margin: float = 0.25


@dataclass
class ModelSchema:
    """``conf/model``: ``maskcls.model.module.MaskClassifier``."""

    _target_: str = "maskcls.model.module.MaskClassifier"
    backbone: str = "resnet18"
    pretrained: bool = False
    pretrained_file: str | None = None
    head: str = "multi"
    task_weights: dict[str, float] | None = None
    drop_rate: float = ranged(0.0, low=0, high=Open(1))
    channels_last: bool = False
    num_classes: int = 18
    age_regression: float = 0.0


@dataclass
class AdamSchema:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = ranged(1e-3, low=Open(0))
    weight_decay: float = ranged(0.0, low=0)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = ranged(1e-8, low=Open(0))
    amsgrad: bool = False


@dataclass
class AdamWSchema(AdamSchema):
    _target_: str = "torch.optim.AdamW"
    weight_decay: float = ranged(0.01, low=0)


@dataclass
class SGDSchema:
    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    lr: float = ranged(1e-3, low=Open(0))
    momentum: float = ranged(0.0, low=0, high=Open(1))
    nesterov: bool = False
    weight_decay: float = ranged(0.0, low=0)
    dampening: float = 0.0


@dataclass
class CosineSchema:
    _target_: str = "torch.optim.lr_scheduler.CosineAnnealingLR"
    _partial_: bool = True
    T_max: int = ranged(10, low=1)
    eta_min: float = ranged(0.0, low=0)


@dataclass
class StepSchema:
    _target_: str = "torch.optim.lr_scheduler.StepLR"
    _partial_: bool = True
    step_size: int = ranged(5, low=1)
    gamma: float = ranged(0.5, low=Open(0), high=1)


@dataclass
class PlateauSchema:
    _target_: str = "torch.optim.lr_scheduler.ReduceLROnPlateau"
    _partial_: bool = True
    mode: str = choice("max", "max", "min")
    factor: float = ranged(0.5, low=Open(0), high=Open(1))
    patience: int = ranged(2, low=0)
    threshold: float = ranged(1e-4, low=0)
    min_lr: float = ranged(0.0, low=0)


@dataclass
class SchedulerSchema:
    """``conf/scheduler``: a warm-up and a torch schedule (checked by its ``_target_``)."""

    SOURCE: ClassVar[str] = "conf/scheduler"

    scheduler: Any = None
    warmup_epochs: int = ranged(0, low=0)
    monitor: str | None = None  # ReduceLROnPlateau's metric


@dataclass
class CrossEntropySchema:
    _target_: str = "maskcls.model.losses.CrossEntropy"
    weighted: bool = False
    label_smoothing: float = 0.0
    logit_adjust: float = 0.0


@dataclass
class FocalSchema:
    _target_: str = "maskcls.model.losses.FocalLoss"
    gamma: float = 2.0
    label_smoothing: float = 0.0
    weighted: bool = False


@dataclass
class SoftF1Schema:
    _target_: str = "maskcls.model.losses.SoftF1Loss"
    eps: float = 1e-7


@dataclass
class EMASchema:
    _target_: str = "maskcls.model.ema.EMA"
    decay: float = 0.95
    start_step: int = 0


@dataclass
class TrainerSchema:
    """``conf/trainer``: Lightning's ``Trainer`` (all but callbacks, loggers, plugins)."""

    _target_: str = "pytorch_lightning.Trainer"
    accelerator: str = "auto"
    strategy: str = "auto"
    devices: Any = checked("auto", check_devices)
    num_nodes: int = ranged(1, low=1)
    precision: Any = checked(None, check_precision)
    fast_dev_run: Any = checked(False, check_fast_dev_run)
    max_epochs: int = ranged(10, low=1)
    min_epochs: int | None = ranged(None, low=0, integer=True, optional=True)
    max_steps: int = -1
    min_steps: int | None = None
    max_time: Any = checked(None, check_max_time)
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    limit_predict_batches: Any = None
    overfit_batches: Any = 0.0
    val_check_interval: Any = None
    check_val_every_n_epoch: int | None = ranged(1, low=1, optional=True)
    num_sanity_val_steps: int | None = None
    log_every_n_steps: int | None = ranged(None, low=1, integer=True, optional=True)
    enable_checkpointing: bool | None = None
    enable_progress_bar: bool | None = None
    enable_model_summary: bool | None = None
    accumulate_grad_batches: int = ranged(1, low=1)
    gradient_clip_val: float | None = ranged(None, low=0, integer=False, optional=True)
    gradient_clip_algorithm: str | None = None
    deterministic: Any = checked(None, check_deterministic)
    benchmark: bool | None = None
    inference_mode: bool = True
    use_distributed_sampler: bool = True
    profiler: str | None = None
    detect_anomaly: bool = False
    barebones: bool = False
    sync_batchnorm: bool = False
    reload_dataloaders_every_n_epochs: int = ranged(0, low=0)
    default_root_dir: str | None = None
    enable_autolog_hparams: bool = True
    model_registry: str | None = None

    @staticmethod
    def rules(key: str, node: Any) -> None:
        """A GPU asked for is there, as many as asked for."""
        check_accelerator(f"{key}.accelerator", node.get("accelerator"),
                          node.get("devices", 1))


@dataclass
class TrainConfig:
    """``conf/train.yaml`` at the top: the run's own keys; each group node is checked by
    its ``_target_`` (``BY_TARGET``) or, without one, by its field here."""

    SOURCE: ClassVar[str] = "conf/train.yaml"

    task_name: str = "train"
    tags: Any = checked([], lambda key, value: tag_list(value))
    seed: int = ranged(42, low=0, high=SEED_MAX)
    monitor: str = "val/f1"
    monitor_mode: str = choice("max", "max", "min")
    resume: str | None = None
    ckpt_path: str | None = None
    allow_failures: bool = False
    paths: PathsConfig = field(default_factory=PathsConfig)
    augment: AugmentSchema = field(default_factory=AugmentSchema)
    scheduler: SchedulerSchema = field(default_factory=SchedulerSchema)
    data: Any = None
    model: Any = None
    loss: Any = None
    optimizer: Any = None
    trainer: Any = None
    callbacks: Any = None
    logger: Any = None


@dataclass
class PredictData:
    SOURCE: ClassVar[str] = "conf/predict.yaml"

    root: str | None = None


@dataclass
class PredictSettings:
    """``conf/predict.yaml``: what ``maskcls.inference.predict`` takes."""

    SOURCE: ClassVar[str] = "conf/predict.yaml"

    ckpt: Any = None  # a path, or a list of them
    model_file: str | None = None
    data: PredictData = field(default_factory=PredictData)
    output: str | None = None
    tta: bool = True
    tta_crop: float | None = ranged(None, low=0, high=Open(1), optional=True)  # None: as trained
    calibrate: bool = False
    face_boxes: str | None = None
    save_probs: bool = False
    overwrite: bool = False
    batch_size: int = ranged(128, low=1)
    num_workers: int = ranged(2, low=0)
    accelerator: str = "auto"

    @staticmethod
    def rules(key: str, node: Any) -> None:
        check_accelerator("accelerator", node.get("accelerator"))


@dataclass
class ExportSettings:
    """``conf/export.yaml``: what ``maskcls.export.writer.export`` takes."""

    SOURCE: ClassVar[str] = "conf/export.yaml"

    ckpt: str = "???"
    format: str = "onnx"  # the writer names its formats (maskcls.export.reader.FORMATS)
    output: str | None = None
    face_boxes: str | None = None
    overwrite: bool = False


BY_TARGET: dict[str, type] = {s._target_: s for s in (
    DataSchema, ModelSchema, AdamSchema, AdamWSchema, SGDSchema, CosineSchema, StepSchema,
    PlateauSchema, CrossEntropySchema, FocalSchema, SoftF1Schema, EMASchema, TrainerSchema)}
