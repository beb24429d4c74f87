"""Every figure maskcls writes: a run's confusion matrix and learning curve, a sweep's
summary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from maskcls import labels

# Files only, never a window (training machines have no display): every figure is made with
# pyplot under the Agg backend, chosen here explicitly rather than by the environment.
plt.switch_backend("agg")


def title_and_fit(fig: Figure, title: str, fontsize: float = 11) -> None:
    """``title`` above every panel and the panels fitted below it: ``tight_layout`` alone
    ignores a figure title and draws it over the first row."""
    lines = title.count("\n") + 1
    band = (lines * fontsize * 1.6 + 6) / 72 / fig.get_figheight()  # the title's height
    fig.suptitle(title, fontsize=fontsize, y=1 - 3 / 72 / fig.get_figheight(), va="top")
    fig.tight_layout(rect=(0, 0, 1, 1 - band))


def confusion_matrix_png(matrix: Sequence[Sequence[float]], path: str | Path,
                         title: str = "validation confusion matrix") -> Path:
    """Row-normalised 18x18 confusion matrix with raw counts in each cell, each class's F1 and
    support beside its row, lines between the mask blocks; beside it the per-task matrices
    (mask 3x3, gender 2x2, age 3x3)."""
    cm = np.asarray(matrix, dtype=float)
    n = len(cm)
    fig = plt.figure(figsize=(17, 9.5))
    grid = fig.add_gridspec(3, 2, width_ratios=[3.2, 1], hspace=0.75, wspace=0.25)
    ax = fig.add_subplot(grid[:, 0])
    im = _matrix(ax, cm, [f"{c} {labels.CLASS_NAMES[c]}" for c in range(n)]
                 if n == labels.NUM_CLASSES else [str(c) for c in range(n)], fontsize=8)
    support, predicted = cm.sum(1), cm.sum(0)
    f1 = np.divide(2 * np.diag(cm), support + predicted, out=np.zeros(n),
                   where=support + predicted > 0)
    for i in range(n):
        text = f"F1 {f1[i]:.2f}  n={int(support[i])}" if support[i] else "n=0"
        ax.text(n - 0.3, i, text, va="center", fontsize=8, clip_on=False)
    if n == labels.NUM_CLASSES:
        for edge in (5.5, 11.5):  # mask blocks: wear | incorrect | not worn
            ax.axhline(edge, color="black", lw=1)
            ax.axvline(edge, color="black", lw=1)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.12, label="share of the true class")
    if n == labels.NUM_CLASSES:
        for k, (task, names) in enumerate(labels.TASKS.items()):
            _matrix(fig.add_subplot(grid[k, 1]), _task_matrix(cm, k), list(names), fontsize=8)
            fig.axes[-1].set_title(f"{task}", fontsize=9)
    path = Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _task_matrix(cm: np.ndarray, task: int) -> np.ndarray:
    """The 18x18 matrix summed down to one task's (class = 6 mask + 3 gender + age)."""
    codes = [labels.decode(c)[task] for c in range(labels.NUM_CLASSES)]
    size = labels.TASK_SHAPE[task]
    out = np.zeros((size, size))
    for i, a in enumerate(codes):
        for j, b in enumerate(codes):
            out[int(a), int(b)] += cm[i, j]
    return out


def _matrix(ax: plt.Axes, cm: np.ndarray, names: Sequence[str], fontsize: int) -> Any:
    norm = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(cm)):
        for j in range(len(cm)):
            if cm[i, j]:
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=fontsize,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(cm)), names, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(len(cm)), names, fontsize=fontsize)
    ax.set_xlabel("predicted", fontsize=fontsize + 1)
    ax.set_ylabel("true", fontsize=fontsize + 1)
    return im


def learning_curve_png(metrics_csv: str | Path, path: str | Path,
                       best_epoch: int | None = None, run_name: str = "") -> Path | None:
    """Per epoch, from the run's ``metrics.csv``: train and validation loss, macro-F1, the
    validation F1 of each task, and the learning rate; the best checkpoint's epoch marked.
    None when no epoch was logged."""
    rows = pd.read_csv(metrics_csv)
    if "epoch" not in rows:
        return None
    rows["epoch"] = rows["epoch"].bfill().ffill()  # the learning rate is logged without one
    per_epoch = rows.groupby("epoch").mean(numeric_only=True)
    lr = [c for c in per_epoch if c.startswith("lr-")]
    panels = [("loss", [("train/loss_epoch", "train"), ("val/loss", "validation")]),
              ("macro-F1", [("train/f1", "train"), ("val/f1", "validation")]),
              ("validation F1 per task", [(f"val/f1_{t}", t) for t in labels.TASKS]),
              ("learning rate", [(c, c[3:]) for c in lr])]
    if per_epoch.empty or "val/f1" not in per_epoch and "train/f1" not in per_epoch:
        return None
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for ax, (name, series) in zip(axes, panels, strict=True):
        for col, label in series:
            if col in per_epoch and per_epoch[col].notna().any():
                values = per_epoch[col].dropna()
                ax.plot(values.index, values.to_numpy(), "o-", ms=3, label=label)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="gray", ls="--", lw=1, label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[1].set_ylim(0, 1)
    axes[2].set_ylim(0, 1)
    fig.suptitle(f"learning curve{': ' + run_name if run_name else ''}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def sweep_summary_png(table: pd.DataFrame, cv: pd.DataFrame, varying: Sequence[str],
                      fold_key: str, path: Path) -> Path:
    """A sweep's ``summary.png`` (``sweep_figure``)."""
    fig = sweep_figure(table, cv, varying, fold_key)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fitted_limits(values: Sequence[float], room: float = 0.0) -> tuple[float, float]:
    """An axis around the finite ``values`` (within 0..1) with a margin, and ``room`` (a
    share of the span) on the right for value labels: differences of a few points show."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not len(v):
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    pad = max(0.01, 0.1 * (hi - lo))
    span = hi - lo + 2 * pad
    return max(0.0, lo - pad), min(1.0 + room * span, hi + pad + room * span)


def sweep_figure(table: pd.DataFrame, cv: pd.DataFrame, varying: Sequence[str],
                 fold_key: str) -> Figure:
    """Jobs as dots on an axis fitted to their macro-F1 (failed and unfinished jobs marked at
    its left edge); for k-fold sweeps, each configuration's fold mean with its +-std bar and,
    on its own row beside it, the out-of-fold macro-F1."""
    panels = 2 if not cv.empty else 1
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 1.4 + 0.35 * len(table)),
                             squeeze=False)
    ax = axes[0, 0]
    names = [_wrap(settings_label(r, varying) or f"job {r['job']}")
             for _, r in table.iterrows()]
    y = np.arange(len(table))
    done = (table["status"] == "done").to_numpy()
    f1 = table["macro_f1"].to_numpy(dtype=float)
    lo, hi = fitted_limits(f1[done], room=0.15)
    ax.hlines(y[done], lo, f1[done], color="tab:blue", alpha=0.25, lw=1)
    ax.plot(f1[done], y[done], "o", color="tab:blue", label="validation macro-F1")
    for i in y[done]:
        ax.annotate(f"{f1[i]:.3f}", (f1[i], i), xytext=(5, 0), textcoords="offset points",
                    va="center", fontsize=8)
    for i in y[~done]:
        failed = table["status"].iloc[i] == "failed"
        ax.plot(lo, i, "x", color="tab:red" if failed else "tab:gray", ms=8, clip_on=False)
        ax.annotate(table["status"].iloc[i], (lo, i), xytext=(8, 0), textcoords="offset points",
                    va="center", fontsize=8, color="tab:red" if failed else "tab:gray")
    ax.set_yticks(y, names, fontsize=8)
    ax.set_ylim(len(table) - 0.5, -0.5)
    ax.set_xlim(lo, hi)
    ax.set_xlabel("validation macro-F1")
    ax.set_title("jobs" + (" (x: failed in red, unfinished or damaged in grey)"
                           if (~done).any() else ""))
    ax.grid(axis="x", alpha=0.3)
    if not cv.empty:
        ax = axes[0, 1]
        keys = [k for k in varying if k != fold_key]
        labels_ = [_wrap(settings_label(r, keys) or "all folds")
                   for _, r in cv.iterrows()]
        yc = np.arange(len(cv), dtype=float)
        mean, std = cv["f1_mean"].to_numpy(float), cv["f1_std"].fillna(0).to_numpy(float)
        shown = [*(mean - std), *(mean + std)]
        ax.errorbar(mean, yc - 0.15, xerr=std, fmt="D", color="tab:blue", capsize=4,
                    label="fold mean +- std")
        if "oof_f1" in cv:
            oof = cv["oof_f1"].to_numpy(float)
            shown += list(oof)
            ax.plot(oof, yc + 0.15, "o", color="black", label="out-of-fold")
        lo, hi = fitted_limits(shown)
        ax.set_yticks(yc, labels_, fontsize=8)
        ax.set_ylim(len(cv) - 0.5, -0.5)
        ax.set_xlim(lo, hi)
        ax.set_xlabel("macro-F1")
        ax.set_title("cross-validation")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def settings_label(values: Any, keys: Sequence[str]) -> str:
    """``loss=focal fold=2``: a job's or configuration's swept settings, by their last key part."""
    return " ".join(f"{k.split('.')[-1]}={values[k]}" for k in keys)


def _wrap(label: str, width: int = 38) -> str:
    """A long settings label on several lines, nothing cut off."""
    import textwrap

    return "\n".join(textwrap.wrap(label, width, break_on_hyphens=False)) or label


def sweep_epochs_png(curves: dict[str, Path], path: Path) -> Path | None:
    """Every job's validation macro-F1 per epoch (``metrics_epochs.csv``), one line each."""
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for label, csv in curves.items():
        table = pd.read_csv(csv)
        if "val/f1" in table:
            ax.plot(table["epoch"], table["val/f1"], "o-", ms=3, label=_wrap(label, 50))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation macro-F1")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title("validation macro-F1 per epoch, every job")
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
