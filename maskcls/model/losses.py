"""Losses for the imbalanced 18-class task. Each is one class here plus one ``conf/loss`` yaml.

Every loss takes the training class counts through ``set_class_counts`` (``train.py`` passes
them once the data is set up; or ``class_counts=`` when it is built), so class-weighted
variants need no extra wiring; losses that do not weight ignore them. Targets are class ids
``(B,)`` or, after mixup / cutmix, class probabilities ``(B, C)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from maskcls import labels
from maskcls.config import Open, check_value
from maskcls.errors import ConfigError


def inverse_frequency_weights(class_counts: Sequence[int]) -> torch.Tensor:
    """``w_c = N / (C * n_c)`` (sklearn's "balanced"); unseen classes get weight 0."""
    counts = torch.as_tensor(class_counts, dtype=torch.float32)
    w = counts.sum() / (len(counts) * counts.clamp_min(1))
    return torch.where(counts > 0, w, torch.zeros_like(w))


def target_probs(target: torch.Tensor, n_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """Class ids -> one-hot rows; probability rows (mixed targets) pass through."""
    if target.ndim == 2:
        return target.to(dtype)
    return F.one_hot(target, n_classes).to(dtype)


class _Weighted(nn.Module):
    """A loss that reads the training class counts: ``weighted`` turns them into inverse
    frequency weights, ``logit_adjust`` (tau) into the shift ``tau * log(prior)``."""

    def __init__(self, weighted: bool, class_counts: Sequence[int] | None,
                 logit_adjust: float = 0.0) -> None:
        super().__init__()
        check_value("loss.logit_adjust", logit_adjust, "number", 0)
        self.weighted, self.logit_adjust = weighted, logit_adjust
        self.register_buffer("weight", None, persistent=False)
        self.register_buffer("log_prior", None, persistent=False)
        if class_counts is not None:
            self.set_class_counts(class_counts)

    def set_class_counts(self, class_counts: Sequence[int]) -> None:
        if self.weighted:
            self.weight = inverse_frequency_weights(class_counts)
        if self.logit_adjust:
            counts = torch.as_tensor(class_counts, dtype=torch.float32).clamp_min(1)
            self.log_prior = (counts / counts.sum()).log()

    def _check_counts(self) -> None:
        if (self.weighted and self.weight is None) or (self.logit_adjust and
                                                       self.log_prior is None):
            raise ConfigError("a class-weighted or logit-adjusted loss needs the training class "
                              "counts (set_class_counts) before its first batch")

    def _adjusted(self, logits: torch.Tensor) -> torch.Tensor:
        """Logit adjustment (Menon et al., 2021): the loss sees ``logits + tau * log(prior)``,
        so the logits themselves learn the balanced posterior and a rare class wins its
        images without a decision offset fitted on a few validation people."""
        if self.log_prior is None:
            return logits
        return logits + self.logit_adjust * self.log_prior.to(logits.dtype)


class CrossEntropy(_Weighted):
    """Cross-entropy; ``weighted`` uses inverse class frequencies, ``label_smoothing`` is
    PyTorch's built-in smoothing, ``logit_adjust`` > 0 trains for balanced decisions
    (``_Weighted._adjusted``)."""

    def __init__(self, weighted: bool = False, label_smoothing: float = 0.0,
                 logit_adjust: float = 0.0, class_counts: Sequence[int] | None = None) -> None:
        super().__init__(weighted, class_counts, logit_adjust)
        check_value("loss.label_smoothing", label_smoothing, "number", 0, Open(1))
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._check_counts()
        logits = self._adjusted(logits)
        if target.ndim == 2 and self.weight is not None:
            return self._weighted_soft(logits, target)
        if target.ndim == 2:  # mixed targets: class probabilities
            target = target.to(logits.dtype)
        return F.cross_entropy(logits, target, weight=self.weight,
                               label_smoothing=self.label_smoothing)


    def _weighted_soft(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """PyTorch's weighted, label-smoothed cross-entropy of class ids, for probability rows:
        normalised by the targets' weights as for ids (PyTorch divides probability targets by
        the batch size instead), so a one-hot row gives exactly the id's loss."""
        log_p = F.log_softmax(logits.float(), dim=1)
        w, q, eps = self.weight.float(), target.float(), self.label_smoothing
        per_sample = -((1 - eps) * (q * w * log_p).sum(1) + eps / q.shape[1] * (w * log_p).sum(1))
        return per_sample.sum() / (q @ w).sum().clamp_min(1e-12)


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
        check_value("loss.label_smoothing", label_smoothing, "number", 0, Open(1))
        self.gamma, self.label_smoothing = gamma, label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self._check_counts()
        log_p = F.log_softmax(logits.float(), dim=1)
        n_classes = log_p.shape[1]
        hard = target_probs(target, n_classes, log_p.dtype)
        q = hard * (1 - self.label_smoothing) + self.label_smoothing / n_classes
        focal = (1 - log_p.exp()).clamp_min(0) ** self.gamma if self.gamma else 1.0
        loss = -(q * focal * log_p).sum(1)
        if self.weight is not None:
            w = hard @ self.weight.to(hard.dtype)  # a mixed sample: the mixture of its weights
            return (loss * w).sum() / w.sum().clamp_min(1e-12)
        return loss.mean()


class SoftF1Loss(nn.Module):
    """``1 - macro-F1`` computed on softmax probabilities (a differentiable F1)."""

    def __init__(self, eps: float = 1e-7, class_counts: Sequence[int] | None = None) -> None:
        super().__init__()
        self.eps = eps

    def set_class_counts(self, class_counts: Sequence[int]) -> None:
        """Unweighted: the counts change nothing."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        prob = logits.float().softmax(dim=1)
        onehot = target_probs(target, prob.shape[1], prob.dtype)
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

    def set_class_counts(self, class_counts: Sequence[int]) -> None:
        for loss in self.losses.values():
            loss.set_class_counts(class_counts)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(self.weights[n] * loss(logits, target) for n, loss in self.losses.items())


class TaskLoss(nn.Module):
    """The loss of a per-task head (``model.head=multi``): ``sum_t weight_t * loss_t`` over
    mask, gender and age, each ``loss_t`` a configured loss (``make_loss()``) given that task's
    class counts. An 18-class target (ids or mixed probabilities) is split into its three task
    targets (for probabilities, their marginals)."""

    def __init__(self, make_loss: Callable[[], nn.Module],
                 weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        self.losses = nn.ModuleDict({task: make_loss() for task in labels.TASKS})
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(labels.TASKS))
        if unknown:
            raise ConfigError(f"model.task_weights: unknown task(s) {unknown}; the tasks are "
                              f"{list(labels.TASKS)}")
        for task, w in weights.items():
            check_value(f"model.task_weights.{task}", w, "number", 0)
        self.weights = {task: float(weights.get(task, 1.0)) for task in labels.TASKS}

    def set_class_counts(self, class_counts: Sequence[int]) -> None:
        """Each task's loss gets the counts of its own classes (the 18 counts' marginals)."""
        per_task = labels.task_marginals(torch.as_tensor(class_counts, dtype=torch.float64))
        for task, counts in zip(labels.TASKS, per_task, strict=True):
            self.losses[task].set_class_counts(counts.round().long().tolist())

    def forward(self, logits: Mapping[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        if target.ndim == 2:
            targets = labels.task_marginals(target.float())
        else:
            targets = labels.decode(target)
        return sum(self.weights[t] * self.losses[t](logits[t], y)
                   for t, y in zip(labels.TASKS, targets, strict=True))
