"""LightningModule: a timm backbone with an 18-way head, a loss, and per-stage metrics."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

import pytorch_lightning as pl
import timm
import torch
from torch import nn
from torch.optim.lr_scheduler import LinearLR, ReduceLROnPlateau, SequentialLR

from maskcls import labels
from maskcls.errors import ConfigError
from maskcls.model.metrics import StageMetrics


def create_backbone(name: str, pretrained: bool = False, num_classes: int = labels.NUM_CLASSES,
                    **kwargs: Any) -> nn.Module:
    """``timm.create_model`` with a clear error for a name timm does not know."""
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ConfigError(f"model.backbone={name!r} is not a timm model.{hint} "
                         "`python -c \"import timm; print(timm.list_models('resnet*'))\"` lists "
                         "the available names.")
    return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, **kwargs)


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
        drop_rate: dropout before the classifier.
        loss: the criterion (``conf/loss``).
        optimizer: a partial taking the parameters (``conf/optimizer``).
        scheduler: ``{scheduler: partial taking the optimizer, warmup_epochs, monitor,
            interval}`` or None (``conf/scheduler``).
        channels_last: use the channels-last memory format (faster convolutions on GPU).
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        pretrained: bool = False,
        drop_rate: float = 0.0,
        loss: nn.Module | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        channels_last: bool = False,
        num_classes: int = labels.NUM_CLASSES,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["loss", "optimizer", "scheduler"])
        self.net = create_backbone(backbone, pretrained, num_classes, drop_rate=drop_rate)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    # ---------------------------------------------------------------------------- steps
    def training_step(self, batch: tuple[torch.Tensor, ...], _: int) -> torch.Tensor:
        x, y, _index = batch
        logits = self(x)
        loss = self.criterion(logits, y)
        self.train_metrics.update(logits.argmax(1), y)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=len(y))
        return loss

    def on_train_epoch_end(self) -> None:
        self.log_dict(self.train_metrics.logged(), sync_dist=False)
        self.train_metrics.reset()

    def validation_step(self, batch: tuple[torch.Tensor, ...], _: int) -> None:
        x, y, index = batch
        logits = self(x)
        self.log("val/loss", self.criterion(logits, y), on_epoch=True, sync_dist=True,
                 batch_size=len(y))
        self.val_metrics.update(logits.argmax(1), y)
        self._val_outputs.append((logits.float().softmax(1), y, index))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # which epoch's weights were loaded (the run's final validation loads best.ckpt)
        self.loaded_epoch = checkpoint.get("epoch")

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
