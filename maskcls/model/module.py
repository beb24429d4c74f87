"""LightningModule: a timm backbone with an 18-way head or three per-task heads, a loss, and
per-stage metrics.

Both heads give the rest of maskcls the same thing: ``forward`` returns 18 class scores whose
softmax is the class probability. The per-task head (``head="multi"``: mask 3, gender 2,
age 3) returns the log of the product of its three softmaxes, so metrics, validation
predictions, ensembles, TTA and ``predict.py`` work unchanged.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import timm
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LinearLR, ReduceLROnPlateau, SequentialLR

from maskcls import labels
from maskcls.config import check_value
from maskcls.errors import ConfigError
from maskcls.model.metrics import StageMetrics

HEADS = ("single", "multi")
DEFAULT_HEAD = "single"  # checkpoints made before heads existed have a single one
AGE_YEARS = "age_years"  # the output of the age-regression head (``model.age_regression``)
# Recorded ages (18..60) are regressed as (age - centre) / scale: about -1.5..1.3
AGE_CENTRE, AGE_SCALE = 40.0, 15.0


def create_backbone(name: str, pretrained: bool = False, num_classes: int = labels.NUM_CLASSES,
                    pretrained_file: str | None = None, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` with a clear error for a name timm does not know.

    ``pretrained_file``: a local weights file (``.pth``, ``.bin`` or ``.safetensors``, the
    ImageNet weights of this architecture) loaded through timm's pretrained-config overlay,
    so a machine without internet gets timm's usual handling (classifier dropped when the
    class count differs, input channels adapted)."""
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ConfigError(f"model.backbone={name!r} is not a timm model.{hint} "
                         "`python -c \"import timm; print(timm.list_models('resnet*'))\"` lists "
                         "the available names.")
    if pretrained_file:
        path = check_pretrained_file(pretrained_file, name)
        try:
            net = timm.create_model(name, pretrained=True, num_classes=num_classes,
                                    pretrained_cfg_overlay={"file": str(path)}, **kwargs)
        except (RuntimeError, KeyError, ValueError) as e:
            raise ConfigError(f"model.pretrained_file={path} does not fit model.backbone={name} "
                              f"({str(e).splitlines()[0][:300]}); give the weights of this "
                              "architecture") from None
        return net
    return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, **kwargs)


def _file_keys(path: Path) -> set[str]:
    """The tensor names of a weights file, read without running code; a truncated or empty
    file is one error naming it."""
    try:
        return set(timm.models.load_state_dict(str(path), weights_only=True))
    except Exception as e:  # noqa: BLE001 - safetensors, torch and zip raise their own types
        raise ConfigError(f"model.pretrained_file={path} cannot be read as weights "
                          f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})"
                          "; it may be truncated or empty: copy it again") from None


def _check_weights_match(net: nn.Module, keys: set[str], path: Path, name: str) -> None:
    """timm loads a file non-strictly when the classifier is replaced: a file of another
    architecture would leave layers at random weights, or its extra layers unused, silently.
    Every backbone weight must be in the file and every weight of the file in the backbone
    (the classifier aside)."""
    classifier = net.pretrained_cfg.get("classifier") or "fc"
    heads = tuple(f"{c}." for c in ([classifier] if isinstance(classifier, str) else classifier))
    wanted = {k for k in net.state_dict() if not k.startswith(heads)
              and not k.endswith("num_batches_tracked")}
    given = {k for k in keys if not k.startswith(heads) and not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(wanted - given), sorted(given - wanted)
    if missing or unexpected:
        parts = ([f"{len(missing)} of its {len(wanted)} weights are not in the file (e.g. "
                  f"{', '.join(missing[:3])})"] if missing else []) + \
            ([f"{len(unexpected)} weights of the file are not in it (e.g. "
              f"{', '.join(unexpected[:3])})"] if unexpected else [])
        raise ConfigError(f"model.pretrained_file={path} does not fit model.backbone={name}: "
                          f"{'; '.join(parts)}. Give the weights of this architecture")


def check_pretrained_file(path: str, backbone: str) -> Path:
    """``model.pretrained_file`` is a readable weights file (read without running code) of
    ``backbone``'s architecture: checked on a model built on the meta device (no memory)."""
    p = Path(os.path.expanduser(str(path)))
    if not p.is_file():
        raise ConfigError(f"model.pretrained_file={path}: no such file. Copy the backbone's "
                          "ImageNet weights (.pth/.bin/.safetensors) to this machine, or use "
                          "model.pretrained=true where the network is reachable.")
    if p.suffix.lower() not in (".pth", ".pt", ".bin", ".safetensors"):
        raise ConfigError(f"model.pretrained_file={path}: expected a .pth, .pt, .bin or "
                          ".safetensors weights file")
    keys = _file_keys(p)
    with torch.device("meta"):
        net = timm.create_model(backbone)
    _check_weights_match(net, keys, p, backbone)
    return p


def check_head(head: str) -> None:
    if head not in HEADS:
        raise ConfigError(f"model.head must be one of {HEADS}, got {head!r}")


def check_age_regression(weight: float, head: str) -> None:
    check_value("model.age_regression", weight, "number", 0)
    if weight and head != "multi":
        raise ConfigError(f"model.age_regression={weight} needs model.head=multi (the "
                          f"regression head sits on the pooled features); got {head!r}")


def age_regression_loss(predicted: torch.Tensor, ages: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 between the age head's output and the recorded age, both on the scale of
    ``(age - AGE_CENTRE) / AGE_SCALE``. Images without a recorded age (NaN: pseudo-labelled or
    SMOTE rows) do not count; a batch of only those gives a zero loss."""
    known = torch.isfinite(ages)
    if not bool(known.any()):
        return predicted.sum() * 0.0
    target = (ages[known].to(predicted.dtype) - AGE_CENTRE) / AGE_SCALE
    return F.smooth_l1_loss(predicted[known].float(), target.float())


def check_schedule(scheduler: Mapping[str, Any] | None) -> None:
    """``conf/scheduler`` settings that cannot work together: a linear warm-up is chained
    before an epoch-stepped schedule, which ReduceLROnPlateau (stepped on a metric) is not."""
    sched = (scheduler or {}).get("scheduler")
    if (scheduler or {}).get("warmup_epochs") and \
            getattr(sched, "func", sched) is ReduceLROnPlateau:
        raise ConfigError("scheduler.warmup_epochs is not supported with scheduler=plateau; set "
                          "scheduler.warmup_epochs=0")


class MaskClassifier(pl.LightningModule):
    """Args:
        backbone: timm model name (``resnet18``, ``densenet161``, ``efficientnet_b0`` ...).
        pretrained: load timm's pretrained weights (needs the network).
        pretrained_file: or load them from this local file (offline machines).
        drop_rate: dropout before the classifier.
        head: ``single`` (one 18-way classifier) or ``multi`` (mask, gender and age heads).
        task_weights: ``{mask, gender, age}`` weights of the per-task losses (``multi``); used
            by ``train.py`` when it builds the loss, recorded here with the run.
        loss: the criterion (``conf/loss``); for ``multi`` a ``TaskLoss``.
        optimizer: a partial taking the parameters (``conf/optimizer``).
        scheduler: ``{scheduler: partial taking the optimizer, warmup_epochs, monitor,
            interval}`` or None (``conf/scheduler``).
        channels_last: use the channels-last memory format (faster convolutions on GPU).
        age_regression: weight of an auxiliary loss (``head=multi``): a linear head on the
            pooled features regresses each person's recorded age in years. Every person then
            teaches the features the ageing ramp, not only the few over 60 that the 60+ class
            sees. Predictions still come from the three task heads; the regression head only
            shapes the features (0: no such head).
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        pretrained: bool = False,
        drop_rate: float = 0.0,
        head: str = DEFAULT_HEAD,
        task_weights: Mapping[str, float] | None = None,
        pretrained_file: str | None = None,
        loss: nn.Module | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        channels_last: bool = False,
        num_classes: int = labels.NUM_CLASSES,
        age_regression: float = 0.0,
    ) -> None:
        super().__init__()
        # plain types only: checkpoints are read back with weights_only=True
        task_weights = {str(k): float(v) for k, v in (task_weights or {}).items()} or None
        self.save_hyperparameters(ignore=["loss", "optimizer", "scheduler"])
        check_head(head)
        if head == "multi" and num_classes != labels.NUM_CLASSES:
            raise ConfigError(f"model.head=multi predicts the {labels.NUM_CLASSES} competition "
                              f"classes, not {num_classes}")
        check_age_regression(age_regression, head)
        features = head == "multi"  # the backbone ends at its pooled features
        self.net = create_backbone(backbone, pretrained, 0 if features else num_classes,
                                   pretrained_file, drop_rate=drop_rate)
        self.heads = nn.ModuleDict({
            task: nn.Linear(self.net.num_features, len(names))
            for task, names in labels.TASKS.items()} if features else {})
        self.age_head = nn.Linear(self.net.num_features, 1) if age_regression else None
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.criterion = loss if loss is not None else nn.CrossEntropyLoss()
        self.optimizer_factory = optimizer
        check_schedule(scheduler)
        self.scheduler_cfg = scheduler
        self.train_metrics = StageMetrics("train/", num_classes, detail=False)
        self.val_metrics = StageMetrics("val/", num_classes)
        self.val_details: dict[str, Any] = {}
        self.loaded_epoch: int | None = None
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        # functions that edit every checkpoint this module saves, weights-only ones included
        self.checkpoint_editors: list[Callable[[dict[str, Any]], None]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """18 class scores (logits, or the per-task head's joint log-probabilities)."""
        return self.scores(self.outputs(x))

    def outputs(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """What the loss takes: 18 logits, or ``{task: logits}`` for the per-task head."""
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.net(x)
        if not self.heads:
            return out
        outputs = {task: head(out) for task, head in self.heads.items()}
        if self.age_head is not None:
            outputs[AGE_YEARS] = self.age_head(out).squeeze(1)
        return outputs

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(N, 18)`` of normalised images: what validation, prediction
        (ensembles, TTA) and the exported graph all compute."""
        return self(x).float().softmax(1)

    @staticmethod
    def scores(outputs: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            return outputs
        return labels.joint_log_probs(*(outputs[t].float().log_softmax(-1) for t in labels.TASKS))

    # ---------------------------------------------------------------------------- steps
    def training_step(self, batch: tuple[torch.Tensor, ...], _: int) -> torch.Tensor:
        x, y, _index, *ages = batch  # the datamodule adds each image's recorded age
        out = self.outputs(x)
        loss = self.criterion(out, y)
        if self.age_head is not None:
            if not ages:
                raise ConfigError("model.age_regression needs the recorded ages with each "
                                  "training batch, which maskcls.data's MaskDataModule adds")
            age_loss = age_regression_loss(out[AGE_YEARS], ages[0])
            self.log("train/age_loss", age_loss, on_step=False, on_epoch=True,
                     batch_size=len(y))
            loss = loss + self.hparams.age_regression * age_loss
        hard = y.argmax(1) if y.ndim == 2 else y  # mixed targets: their larger part
        self.train_metrics.update(self.scores(out).argmax(1), hard)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=len(y))
        return loss

    def on_train_epoch_end(self) -> None:
        self.log_dict(self.train_metrics.logged(), sync_dist=False)
        self.train_metrics.reset()

    def validation_step(self, batch: tuple[torch.Tensor, ...], _: int) -> None:
        x, y, index = batch
        out = self.outputs(x)
        logits = self.scores(out)
        self.log("val/loss", self.criterion(out, y), on_epoch=True, sync_dist=True,
                 batch_size=len(y))
        self.val_metrics.update(logits.argmax(1), y)
        self._val_outputs.append((logits.float().softmax(1), y, index))  # = probabilities(x)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # which epoch's weights were loaded (the run's final validation loads best.ckpt)
        self.loaded_epoch = checkpoint.get("epoch")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning lets callbacks edit only full checkpoints; a weights-only one (best.ckpt)
        # is edited through the module's hook by whoever registered (the EMA callback).
        for edit in self.checkpoint_editors:
            edit(checkpoint)

    def on_validation_epoch_end(self) -> None:
        logged = self.val_metrics.logged()
        self.log("val/f1", logged["val/f1"], prog_bar=True)
        self.log_dict({k: v for k, v in logged.items() if k != "val/f1"})
        details = self.val_metrics.details()
        self.val_metrics.reset()
        if self._val_outputs:
            probs, targets, index = (torch.cat(t) for t in zip(*self._val_outputs, strict=True))
            probs, targets = self._in_dataset_order(probs, targets, index)
            details.update(probs=probs.cpu(), targets=targets.cpu())
        self._val_outputs.clear()
        details.update({k: float(v) for k, v in logged.items()})
        self.val_details = details

    def _in_dataset_order(self, probs: torch.Tensor, targets: torch.Tensor,
                          index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every process's validation outputs, sorted by dataset index (each image is on
        exactly one rank; ranks may hold one item more or less, so pad to gather)."""
        if self.trainer.world_size > 1:
            n = len(index)
            width = int(self.all_gather(torch.tensor(n, device=self.device)).max())
            pad = width - n
            probs = torch.cat([probs, probs.new_zeros(pad, probs.shape[1])])
            targets = torch.cat([targets, targets.new_zeros(pad)])
            index = torch.cat([index, index.new_full((pad,), -1)])
            probs, targets, index = (self.all_gather(t).flatten(0, 1)
                                     for t in (probs, targets, index))
            keep = index >= 0
            probs, targets, index = probs[keep], targets[keep], index[keep]
        order = torch.argsort(index)
        return probs[order], targets[order]

    # ------------------------------------------------------------------------ optimiser
    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            raise ConfigError("no optimizer configured: choose one with optimizer=adamw|adam|sgd")
        opt = self.optimizer_factory(params=self.parameters())
        if not self.scheduler_cfg or self.scheduler_cfg.get("scheduler") is None:
            return opt
        sched = self.scheduler_cfg["scheduler"](optimizer=opt)
        warmup = int(self.scheduler_cfg.get("warmup_epochs") or 0)
        monitor = self.scheduler_cfg.get("monitor")
        if isinstance(sched, ReduceLROnPlateau):
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch",
                                                       "monitor": monitor or "val/f1"}}
        if warmup:
            ramp = LinearLR(opt, start_factor=1e-3, end_factor=1.0, total_iters=warmup)
            sched = SequentialLR(opt, [ramp, sched], milestones=[warmup])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
