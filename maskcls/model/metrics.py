"""torchmetrics for one stage: the competition's macro-F1, accuracy, per-class F1, per-task
macro-F1 (mask / gender / age decoded from the 18-class prediction) and the confusion matrix.

``StageMetrics`` accumulates them batch by batch in training and validation; ``score`` computes
the same figures, with the same objects, for whole arrays (submissions, out-of-fold sweeps).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from maskcls import labels


class StageMetrics(nn.Module):
    """All metrics of one stage. ``summary`` metrics are logged every epoch; with ``detail``,
    per-class F1 and the confusion matrix are kept too, read at the end (validation)."""

    def __init__(self, prefix: str, num_classes: int = labels.NUM_CLASSES,
                 detail: bool = True) -> None:
        super().__init__()
        self.prefix = prefix
        self.summary = MetricCollection({
            "f1": MulticlassF1Score(num_classes, average="macro"),
            "acc": MulticlassAccuracy(num_classes, average="micro"),
        }, prefix=prefix)
        self.tasks = nn.ModuleDict({
            task: MulticlassF1Score(len(names), average="macro")
            for task, names in labels.TASKS.items()
        })
        self.detail = nn.ModuleDict({
            "f1_class": MulticlassF1Score(num_classes, average="none"),
            "confmat": MulticlassConfusionMatrix(num_classes),
        } if detail else {})

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.summary.update(preds, target)
        for task, p, t in zip(self.tasks, labels.decode(preds), labels.decode(target),
                              strict=True):
            self.tasks[task].update(p, t)
        for m in self.detail.values():
            m.update(preds, target)

    def logged(self) -> dict[str, torch.Tensor]:
        """Scalars for ``self.log_dict`` (computed across processes)."""
        out = dict(self.summary.compute())
        out.update({f"{self.prefix}f1_{t}": m.compute() for t, m in self.tasks.items()})
        return out

    def details(self) -> dict[str, list]:
        if not self.detail:
            raise RuntimeError(f"{self.prefix} metrics were built without detail=True")
        return {"f1_per_class": self.detail["f1_class"].compute().tolist(),
                "confusion_matrix": self.detail["confmat"].compute().tolist()}

    def reset(self) -> None:
        self.summary.reset()
        for m in [*self.tasks.values(), *self.detail.values()]:
            m.reset()


def score(pred: Any, truth: Any, detail: bool = False) -> dict[str, Any]:
    """Macro-F1 (the competition metric), accuracy and per-task macro-F1 of class-id arrays;
    with ``detail``, also ``f1_per_class`` and ``confusion_matrix`` (truth rows, prediction
    columns)."""
    metrics = StageMetrics("", detail=detail)
    metrics.update(torch.tensor(np.asarray(pred)), torch.tensor(np.asarray(truth)))
    out: dict[str, Any] = {k: float(v) for k, v in metrics.logged().items()}
    n = labels.NUM_CLASSES
    out["classes_scored"] = classes_scored(np.bincount(np.asarray(truth), minlength=n),
                                           np.bincount(np.asarray(pred), minlength=n))
    if detail:
        out.update(metrics.details())
    return out


def classes_scored(support: Any, predicted: Any) -> int:
    """The classes macro-F1 averages (torchmetrics, like scikit-learn): those with images in
    the truth (``support``, per class) or in the prediction (``predicted``)."""
    return int(((np.asarray(support) + np.asarray(predicted)) > 0).sum())
