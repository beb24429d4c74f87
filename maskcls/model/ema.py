"""Exponential moving average of the weights: Lightning's ``EMAWeightAveraging``, made to fit
how maskcls saves and re-validates.

Lightning swaps the averaged weights in for every validation, writes them as ``state_dict``
of full checkpoints (``last.ckpt``, with the raw weights beside them for resuming) and copies
them into the model when training ends. Two gaps are closed here:

* ``best.ckpt`` is saved weights-only, and Lightning lets callbacks edit only full
  checkpoints: ``put_average``, registered with the module as one of its checkpoint editors,
  writes the averaged weights there too, so prediction uses the weights that were validated;
* after ``fit`` the run re-validates ``best.ckpt``; the callback then holds no average of
  its own, so the loaded weights are validated as they are, without a swap or a warning.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EMAWeightAveraging

from maskcls.config import Open, check_value


class EMA(EMAWeightAveraging):
    """EMA of the weights and batch-norm statistics, updated after every optimiser step.

    Args:
        decay: weight of the old average at each step; ``1 / (1 - decay)`` steps are its
            horizon (0.95: about 20 steps, an epoch of the default run).
        start_step: optimiser steps before averaging starts (the first steps of a run from
            scratch are far from anything worth averaging).
    """

    def __init__(self, decay: float = 0.95, start_step: int = 0) -> None:
        check_value("callbacks.ema.decay", decay, "number", Open(0), Open(1))
        check_value("callbacks.ema.start_step", start_step, "int", 0)
        super().__init__(decay=decay, update_starting_at_step=start_step)
        self.decay = decay

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        editors = getattr(pl_module, "checkpoint_editors", None)
        if editors is not None and self.put_average not in editors:
            editors.append(self.put_average)

    def put_average(self, checkpoint: dict[str, Any]) -> None:
        """Averaged weights as ``checkpoint["state_dict"]`` where Lightning did not put them."""
        if self._average_model is None or "current_model_state" in checkpoint:
            return
        checkpoint["state_dict"] = {name[len("module."):]: value.detach().clone()
                                    for name, value in self._average_model.state_dict().items()
                                    if name.startswith("module.")}

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":  # the model now holds the average (on_train_end copied it)
            self._average_model = None

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        if self._average_model is not None:  # resuming a fit; outside fit there is nothing
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
