"""Losses for the imbalanced 18-class task. Each is one class here plus one ``conf/loss`` yaml.

Every loss takes ``class_counts`` (training images per class, given by ``train.py``) so that
class-weighted variants need no extra wiring; losses that do not weight ignore it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from maskcls.config_checks import check_value
from maskcls.errors import ConfigError


def inverse_frequency_weights(class_counts: Sequence[int]) -> torch.Tensor:
    """``w_c = N / (C * n_c)`` (sklearn's "balanced"); unseen classes get weight 0."""
    counts = torch.as_tensor(class_counts, dtype=torch.float32)
    w = counts.sum() / (len(counts) * counts.clamp_min(1))
    return torch.where(counts > 0, w, torch.zeros_like(w))


class _Weighted(nn.Module):
    def __init__(self, weighted: bool, class_counts: Sequence[int] | None) -> None:
        super().__init__()
        if weighted and class_counts is None:
            raise ConfigError("a class-weighted loss needs the training class counts")
        weight = inverse_frequency_weights(class_counts) if weighted else None
        self.register_buffer("weight", weight, persistent=False)


class CrossEntropy(_Weighted):
    """Cross-entropy; ``weighted`` uses inverse class frequencies, ``label_smoothing`` is
    PyTorch's built-in smoothing."""

    def __init__(self, weighted: bool = False, label_smoothing: float = 0.0,
                 class_counts: Sequence[int] | None = None) -> None:
        super().__init__(weighted, class_counts)
        check_value("loss.label_smoothing", label_smoothing, "number", 0, ("open", 1))
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, weight=self.weight,
                               label_smoothing=self.label_smoothing)


class FocalLoss(_Weighted):
    """Focal loss (Lin et al.) on label-smoothed targets:
    ``-sum_c q_c (1 - p_c)^gamma log p_c`` with ``q = (1 - s) onehot + s / C``.

    ``gamma=0`` is (label-smoothed) cross-entropy, which lets one search space cover CE,
    label smoothing and focal loss. ``weighted`` weights each sample by its class's inverse
    frequency.
    """

    def __init__(self, gamma: float = 2.0, label_smoothing: float = 0.0, weighted: bool = False,
                 class_counts: Sequence[int] | None = None) -> None:
        super().__init__(weighted, class_counts)
        check_value("loss.gamma", gamma, "number", 0)
        check_value("loss.label_smoothing", label_smoothing, "number", 0, ("open", 1))
        self.gamma, self.label_smoothing = gamma, label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1)
        n_classes = log_p.shape[1]
        q = F.one_hot(target, n_classes).to(log_p.dtype) * (1 - self.label_smoothing)
        q = q + self.label_smoothing / n_classes
        focal = (1 - log_p.exp()).clamp_min(0) ** self.gamma if self.gamma else 1.0
        loss = -(q * focal * log_p).sum(1)
        if self.weight is not None:
            w = self.weight[target]
            return (loss * w).sum() / w.sum().clamp_min(1e-12)
        return loss.mean()


class SoftF1Loss(nn.Module):
    """``1 - macro-F1`` computed on softmax probabilities (a differentiable F1)."""

    def __init__(self, eps: float = 1e-7, class_counts: Sequence[int] | None = None) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        prob = logits.float().softmax(dim=1)
        onehot = F.one_hot(target, prob.shape[1]).to(prob.dtype)
        tp = (prob * onehot).sum(0)
        fp = (prob * (1 - onehot)).sum(0)
        fn = ((1 - prob) * onehot).sum(0)
        f1 = 2 * tp / (2 * tp + fp + fn + self.eps)
        return 1 - f1.mean()


class WeightedSum(nn.Module):
    """``sum_i weight_i * loss_i``, e.g. CE + F1. ``terms`` maps a name to ``{loss: <loss
    config>, weight: float}``."""

    def __init__(self, terms: Mapping[str, Mapping[str, Any]],
                 class_counts: Sequence[int] | None = None) -> None:
        super().__init__()
        self.losses = nn.ModuleDict(
            {name: instantiate(t["loss"], class_counts=class_counts) for name, t in terms.items()})
        self.weights = {name: float(t.get("weight", 1.0)) for name, t in terms.items()}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(self.weights[n] * loss(logits, target) for n, loss in self.losses.items())
