"""What ``train.py`` does, importable so tests and sweeps reach it: check the config, build
data / model / trainer from it, fit, evaluate the best checkpoint, write the run folder."""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import timm
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint, ModelSummary
from pytorch_lightning.utilities.exceptions import SIGTERMException

from maskcls.config import TrainConfig, validate
from maskcls.config.keys import REQUIRED_GROUPS
from maskcls.data.datamodule import MaskDataModule
from maskcls.errors import (
    ConfigError,
    MaskclsError,
    RunFolderError,
    RunInterrupted,
    UserInterrupted,
)
from maskcls.model.losses import TaskLoss
from maskcls.model.memory import check_step_memory
from maskcls.model.module import (
    DEFAULT_HEAD,
    MaskClassifier,
    check_age_regression,
    check_head,
    check_pretrained_file,
    check_schedule,
    create_backbone,
)
from maskcls.run import STARTED, sweep
from maskcls.run import folder as rf
from maskcls.run.checkpoints import SafeCheckpointIO, check_resumable
from maskcls.run.inputs import check_data_root, check_same_data, settle
from maskcls.run.logs import quiet_libraries
from maskcls.run.results import predict_views, print_summary, write_run_files
from maskcls.training import trackers

log = logging.getLogger(__name__)


def instantiate_plainly(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, re-raising the class's own error (which names the key and
    the fix) instead of Hydra's wrapper around it."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        if e.__cause__ is not None:
            raise e.__cause__ from None
        raise


@dataclass
class Plan:
    """What ``check_config`` built, each piece once, used as it is by the rest of the run: the
    datamodule (not set up yet), the loss (its class counts come with the data), the
    callbacks, the scheduler settings, and the global step of ``ckpt_path`` (None without one;
    the checkpoint is read once)."""

    datamodule: MaskDataModule
    loss: torch.nn.Module
    callbacks: list[pl.Callback]
    scheduler: dict[str, Any] | None
    resume_step: int | None = None


def check_config(cfg: DictConfig) -> Plan:
    """Catch configuration mistakes before any data is read: the config against its schema,
    then the objects built from it, whose constructors check their own values (the datamodule
    its split and sampling, the loss its parameters). The model is built once the data is set
    up (its weights are drawn after the data's draws, as every earlier run's were); its head,
    schedule and weights file are checked here first.

    ``cfg`` is settled first (``inputs.settle``): input paths made absolute, so the run folder
    records what this run read whatever folder a later resume or prediction starts in."""
    validate(cfg, TrainConfig, tuple(REQUIRED_GROUPS))
    settle(cfg)
    trackers.check_loggers(cfg)
    name = cfg.model.backbone
    if not timm.is_model(name):
        create_backbone(name)  # raises the error with suggestions
    if cfg.data.get("batch_size") == 1 and _has_batchnorm(name):
        raise ConfigError(f"data.batch_size=1 cannot train model.backbone={name}: its BatchNorm "
                          "layers need two or more images per batch. Use data.batch_size >= 2 "
                          "(trainer.accumulate_grad_batches adds up batches if memory is short)")
    dm: MaskDataModule = instantiate_plainly(cfg.data, _convert_="all")  # reads no data
    plan = Plan(dm, build_loss(cfg), build_callbacks(cfg),
                instantiate(cfg.scheduler, _convert_="all") if cfg.get("scheduler") else None)
    check_head(cfg.model.get("head", DEFAULT_HEAD))
    check_age_regression(cfg.model.get("age_regression", 0.0), cfg.model.get("head", DEFAULT_HEAD))
    check_schedule(plan.scheduler)
    check_step_memory(name, dm.pipeline.image_size, dm.loading.batch_size,
                      str(cfg.trainer.get("accelerator", "auto")))
    if cfg.model.get("pretrained_file"):
        check_pretrained_file(cfg.model.pretrained_file, name)
    check_data_root(cfg)
    if not cfg.get("ckpt_path"):
        return plan
    ckpt = check_resumable(cfg.ckpt_path, cfg.trainer.max_epochs)
    if _resumes_in(cfg, Path(cfg.paths.output_dir)):
        check_same_data(dm, ckpt, Path(cfg.paths.output_dir))
    plan.resume_step = int(ckpt["global_step"])
    return plan


def _has_batchnorm(backbone: str) -> bool:
    with torch.device("meta"):  # built without memory, only to look at its layers
        net = timm.create_model(backbone)
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())


def build(cfg: DictConfig, plan: Plan | None = None) -> tuple[MaskDataModule, MaskClassifier]:
    """Set up the data, give the loss the training class counts and build the model
    (``plan``: from ``check_config``, run here when not given)."""
    plan = plan if plan is not None else check_config(cfg)
    dm = plan.datamodule
    dm.prepare_data()
    dm.setup("fit")
    plan.loss.set_class_counts(dm.class_counts)
    model: MaskClassifier = instantiate_plainly(
        cfg.model, loss=plan.loss, optimizer=instantiate(cfg.optimizer), scheduler=plan.scheduler)
    _check_input_size(model, dm.pipeline.image_size)
    # Lightning's model summary measures FLOPs and layer sizes on this (else it shows 0)
    model.example_input_array = torch.zeros(1, 3, *dm.pipeline.image_size, dtype=torch.uint8)
    return dm, model


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    return [instantiate_plainly(c) for c in (cfg.get("callbacks") or {}).values()]


def build_loss(cfg: DictConfig) -> torch.nn.Module:
    """``conf/loss`` for the configured head: one 18-class loss, or one per task. Class
    weights come later, from the data (``set_class_counts``)."""
    def make() -> torch.nn.Module:
        return instantiate_plainly(cfg.loss)

    if cfg.model.get("head", DEFAULT_HEAD) == "multi":
        weights = cfg.model.get("task_weights")
        return TaskLoss(make, OmegaConf.to_container(weights) if weights is not None else None)
    return make()


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
    sweep report lists it as failed. SIGTERM stops a run, or a whole sweep, with
    ``RunInterrupted`` (exit code 143), saying how to resume."""
    if not _in_multirun():
        try:
            if cfg.get("resume"):
                cfg = rf.resume_config(cfg.resume, _command_line_overrides(), cfg)
            return train(cfg)
        except MaskclsError as e:
            out = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() \
                else None
            # another run's folder (running, or claimed at the same moment) is never touched
            if out is not None and not isinstance(e, RunInterrupted) and not (
                    isinstance(e, RunFolderError) and rf.is_run_folder(out)):
                rf.discard_unstarted(out, STARTED)
            raise
    if cfg.get("resume"):
        cfg = rf.resume_config(cfg.resume, _command_line_overrides(), cfg)
    try:
        return train(cfg)
    except RunInterrupted as e:
        sweep.record_interrupted(Path(cfg.paths.output_dir), e)
        raise
    except Exception as e:  # noqa: BLE001 - any job failure is recorded, none stops the sweep
        out = Path(cfg.paths.output_dir)
        log.error("job failed (%s: %s); the sweep goes on.", type(e).__name__, e)
        if isinstance(e, RunFolderError):  # the folder is another run's: leave it alone
            return float("nan")
        sweep.record_failure(out, e, traceback.format_exc())
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return float("nan")


def _command_line_overrides() -> list[str]:
    if not HydraConfig.initialized():
        return []
    return [o for o in HydraConfig.get().overrides.task if not o.startswith("resume=")]


def _later_sweep_job() -> bool:
    return _in_multirun() and int(HydraConfig.get().job.num) > 0


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def train(cfg: DictConfig, extra_callbacks: Sequence[pl.Callback] = ()) -> float:
    """Train one run; returns the monitored metric of the best checkpoint (for sweepers).
    ``extra_callbacks`` join the configured ones (benchmarks and tests use it)."""
    started = time.perf_counter()
    quiet_libraries()
    out = Path(cfg.paths.output_dir)
    plan = check_config(cfg)
    resuming = _resumes_in(cfg, out)
    if not resuming:
        plan.resume_step = None  # ckpt_path= of another run: a new run from its weights
    with ExitStack() as held:
        if _is_main_process():
            lock = rf.claim(out, OmegaConf.to_yaml(cfg, resolve=True), resuming)
            held.callback(lock.release)
        return _fit_and_report(cfg, plan, out, started, extra_callbacks)


def _fit(trainer: pl.Trainer, model: MaskClassifier, dm: MaskDataModule, out: Path,
         ckpt_path: str | None) -> None:
    """``trainer.fit``; SIGTERM (pre-emption) and Ctrl-C become ``RunInterrupted`` (a sweep
    records which jobs never ran) instead of Lightning's own exits."""
    last = out / rf.LAST_CKPT

    def where() -> str:
        return (f"the last finished epoch is in {last}; continue with: "
                f"python train.py resume={out}" if last.exists() else
                "no epoch had finished, so nothing was saved; start the run again")

    try:
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    except SIGTERMException:
        raise RunInterrupted(f"SIGTERM stopped the run in epoch {trainer.current_epoch}; "
                             f"{where()}") from None
    except SystemExit:  # Lightning turns Ctrl-C into sys.exit(1) after its own clean-up
        if not trainer.interrupted:
            raise
        raise UserInterrupted(f"Ctrl-C stopped the run in epoch {trainer.current_epoch}; "
                              f"{where()}") from None


def _fit_and_report(cfg: DictConfig, plan: Plan, out: Path, started: float,
                    extra_callbacks: Sequence[pl.Callback]) -> float:
    """``plan.resume_step``: the global step of ``last.ckpt`` when resuming in ``out``."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    dm, model = build(cfg, plan)
    callbacks = plan.callbacks + list(extra_callbacks)
    summary = not _later_sweep_job()  # the layer table once per sweep, not once per job
    if not summary:
        callbacks = [c for c in callbacks if not isinstance(c, ModelSummary)]
    resume_step = plan.resume_step
    # resuming in place continues the trackers' runs recorded in the folder
    continued = resume_step is not None
    loggers = trackers.build_loggers(cfg, continue_in=out if continued else None)
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers,
                                      plugins=[SafeCheckpointIO(out if continued else None)],
                                      **({} if summary else {"enable_model_summary": False}))
    if trainer.is_global_zero:  # fast_dev_run has replaced the loggers: nothing to record
        trackers.start(trainer.loggers, cfg, out, continued)

    earlier = rf.earlier_metrics(out, resume_step) if resume_step is not None else None
    t0 = time.perf_counter()
    _fit(trainer, model, dm, out, cfg.get("ckpt_path"))
    fit_seconds = time.perf_counter() - t0
    if earlier is not None and trainer.is_global_zero:
        rf.merge_metrics_csv(out, *earlier)

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
    print_summary(out, metrics, bool(cfg.trainer.get("fast_dev_run")),
                  predict_views(cfg.get("augment")))
    return float(metrics["val"].get(cfg.monitor.split("/", 1)[-1], float("nan")))


def _resumes_in(cfg: DictConfig, out: Path) -> bool:
    """The run continues from its own folder's ``last.ckpt`` (``resume=``)."""
    return bool(cfg.get("ckpt_path")) and Path(str(cfg.ckpt_path)).absolute() == \
        (out / rf.LAST_CKPT).absolute()


def _is_main_process() -> bool:
    """Rank 0 of rank 0's node (DDP ranks re-run this script with the same folder)."""
    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0


