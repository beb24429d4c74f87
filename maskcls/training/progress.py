"""Progress in ``train.py`` and ``predict.py``: one style (tqdm, animated on a terminal only,
where its redraws are not noise in a log file) and a log line per epoch or prediction pass with
the rate in images per second.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar
from tqdm.auto import tqdm

log = logging.getLogger(__name__)


def interactive() -> bool:
    return sys.stderr.isatty()


T = TypeVar("T")


def progress_bar(batches: Iterable[T], desc: str) -> Iterator[T]:
    """A tqdm bar over ``batches`` of images (prediction), then one log line with the images
    per second."""
    start, images = time.perf_counter(), 0
    with tqdm(batches, desc=desc, unit="batch", disable=not interactive(),
              dynamic_ncols=True) as bar:
        for batch in bar:
            images += _batch_size(batch)
            yield batch
    log_prediction_rate(images, time.perf_counter() - start)


def log_prediction_rate(images: int, seconds: float) -> None:
    log.info("predicted %d images in %.1f s (%.0f img/s)", images, seconds,
             images / max(seconds, 1e-9))


def _batch_size(batch: Any) -> int:
    first = batch[0] if isinstance(batch, list | tuple) else batch
    return int(first.shape[0]) if hasattr(first, "shape") else 1


class ProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar on a terminal; everywhere, one line per epoch with the training
    rate in images per second and the epoch's metrics (prediction: ``progress_bar``).

    An epoch's line is written when the next epoch starts (or training ends): the module logs
    the epoch's training metrics in its own ``on_train_epoch_end``, which Lightning calls after
    the callbacks' hooks."""

    def __init__(self, refresh_rate: int = 5, leave: bool = False) -> None:
        super().__init__(refresh_rate=refresh_rate if interactive() else 0, leave=leave)
        self._started = self._last_batch = 0.0
        self._images = 0
        self._pending: tuple[int, float, float] | None = None  # epoch, seconds, images/s

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write_epoch_line(trainer)
        super().on_train_epoch_start(trainer, pl_module)
        self._started = self._last_batch = time.perf_counter()
        self._images = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self._images += _batch_size(batch)
        self._last_batch = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        seconds = time.perf_counter() - self._started  # with this epoch's validation
        train_seconds = self._last_batch - self._started  # the rate of training alone
        self._pending = (trainer.current_epoch, seconds,
                         self._images / max(train_seconds, 1e-9))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write_epoch_line(trainer)
        super().on_train_end(trainer, pl_module)

    def _write_epoch_line(self, trainer: pl.Trainer) -> None:
        if self._pending is None or not trainer.is_global_zero:
            return
        epoch, seconds, rate = self._pending
        self._pending = None
        m = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        shown = [f"{k} {m[k]:.4f}" for k in ("train/loss_epoch", "train/f1", "val/loss",
                                             "val/f1") if k in m]
        last = trainer.max_epochs - 1 if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        log.info("epoch %d/%s  %.1f s  %.0f img/s  %s", epoch, last, seconds, rate,
                 "  ".join(shown))
