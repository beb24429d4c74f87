"""Mixup and CutMix of a training batch (timm's ``Mixup``), after the batch augmentation.

Targets become class-probability rows ``(B, 18)``: the losses take them as they are, the
per-task head splits them into their task marginals (a mixture of two classes is a mixture of
their masks, genders and ages). One mixing weight per batch (timm's ``mode="batch"``): one
blend or one box for the whole batch, a few vector ops. timm pairs image ``i`` with image
``B-1-i`` and needs an even batch; an odd batch keeps its last image as it is. timm draws its
parameters from numpy's global generator, which the training sampler reseeds every epoch, so
a resumed run mixes the same way. A per-image value (the recorded age) is mixed with the
same weight as the targets.
"""

from __future__ import annotations

import torch
from timm.data import Mixup

from maskcls import labels
from maskcls.data.transforms import AugmentConfig


class MixBatch:
    """``(x, y) -> (x mixed, y as class probabilities)``; None when the config mixes nothing."""

    def __init__(self, cfg: AugmentConfig, num_classes: int = labels.NUM_CLASSES) -> None:
        self.mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mix_prob,
                           switch_prob=cfg.mix_switch if cfg.mixup and cfg.cutmix else 0.0,
                           mode="batch", correct_lam=True, label_smoothing=0.0,
                           num_classes=num_classes)

    @classmethod
    def from_config(cls, cfg: AugmentConfig) -> MixBatch | None:
        return cls(cfg) if (cfg.mixup or cfg.cutmix) and cfg.mix_prob else None

    def __call__(self, x: torch.Tensor, y: torch.Tensor, values: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, ...]:
        """``(x, y[, values]) -> (x mixed, y as class probabilities[, values mixed])``."""
        even = len(x) - len(x) % 2
        lam = 1.0
        if even >= 2:
            # timm's own batch mixing (Mixup.__call__ in mode="batch"), unrolled to keep lam
            lam = self.mixup._mix_batch(x[:even])  # x is mixed in place
        # ids become one-hot rows; rows (soft age targets) are mixed as they are
        rows = y.float() if y.ndim == 2 else torch.nn.functional.one_hot(
            y, self.mixup.num_classes).float()
        target = _pair_mixed(rows, even, lam)
        if values is None:
            return x, target
        return x, target, _pair_mixed(values, even, lam)


def _pair_mixed(t: torch.Tensor, even: int, lam: float) -> torch.Tensor:
    """``t`` with its first ``even`` rows mixed as timm mixes the images: row ``i`` with row
    ``even-1-i``, weight ``lam``; the rest as they are."""
    t = t.clone()
    t[:even] = lam * t[:even] + (1 - lam) * t[:even].flip(0)
    return t
