"""Plots written into run folders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from maskcls import labels  # noqa: E402


def confusion_matrix_png(matrix: Sequence[Sequence[float]], path: str | Path,
                         title: str = "validation confusion matrix") -> Path:
    """Row-normalised confusion matrix with raw counts in each cell."""
    cm = np.asarray(matrix, dtype=float)
    norm = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    fig, ax = plt.subplots(figsize=(11, 9.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    n = len(cm)
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    names = [f"{c} {labels.CLASS_NAMES[c]}" for c in range(n)] if n == labels.NUM_CLASSES \
        else [str(c) for c in range(n)]
    ax.set_xticks(range(n), names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curve_png(metrics_csv: str | Path, path: str | Path,
                       best_epoch: int | None = None) -> Path | None:
    """Train and validation loss and macro-F1 per epoch, from the run's ``metrics.csv``; the
    best checkpoint's epoch marked. None when no epoch was logged."""
    import pandas as pd

    rows = pd.read_csv(metrics_csv)
    if "epoch" not in rows:
        return None
    per_epoch = rows.dropna(subset=["epoch"]).groupby("epoch").mean(numeric_only=True)
    panels = [("loss", "train/loss_epoch", "val/loss"), ("macro-F1", "train/f1", "val/f1")]
    if per_epoch.empty or not any(c in per_epoch for _, *cols in panels for c in cols):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (name, train_col, val_col) in zip(axes, panels, strict=True):
        for col, label, style in ((train_col, "train", "o-"), (val_col, "validation", "s-")):
            if col in per_epoch and per_epoch[col].notna().any():
                series = per_epoch[col].dropna()
                ax.plot(series.index, series.to_numpy(), style, ms=3, label=label)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="gray", ls="--", lw=1, label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[1].set_ylim(0, 1)
    fig.suptitle("learning curve")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
