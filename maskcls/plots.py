"""Every figure maskcls writes: a run's confusion matrix and learning curve, a sweep's
summary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from maskcls import labels

# Files only, never a window (training machines have no display): every figure is made with
# pyplot under the Agg backend, chosen here explicitly rather than by the environment.
plt.switch_backend("agg")


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
    names = [" ".join(f"{k.split('.')[-1]}={r[k]}" for k in varying) or f"job {r['job']}"
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
    ax.set_title("jobs (x: failed in red, unfinished in grey)")
    ax.grid(axis="x", alpha=0.3)
    if not cv.empty:
        ax = axes[0, 1]
        keys = [k for k in varying if k != fold_key]
        labels_ = [" ".join(f"{k.split('.')[-1]}={r[k]}" for k in keys) or "all folds"
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


def label_issues_png(issues: pd.DataFrame, oof: pd.DataFrame, path: Path,
                     columns: int = 4) -> Path:
    """A gallery of suspected label issues: per person the ``normal`` shot (gender, age) or
    the two shots thought swapped (mask), titled with the given and suggested labels."""
    from PIL import Image

    n = max(1, len(issues))
    rows = (n + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    shots = oof.set_index(["folder", "stem"])["path"]
    for ax, r in zip(axes.ravel(), issues.itertuples(index=False), strict=False):
        stems = ("incorrect_mask", "normal") if r.field == "mask" else ("normal",)
        images = [Image.open(shots[(r.folder, s)]).convert("RGB")
                  for s in stems if (r.folder, s) in shots.index]
        if images:
            h = min(im.height for im in images)
            images = [im.resize((round(im.width * h / im.height), h)) for im in images]
            canvas = Image.new("RGB", (sum(im.width for im in images), h))
            x = 0
            for im in images:
                canvas.paste(im, (x, 0))
                x += im.width
            ax.imshow(canvas)
        given, suggested = str(r.given), str(r.suggested)
        if r.field == "mask":
            given, suggested = "as named", "incorrect_mask <-> normal"
        ax.set_title(f"{r.person_id} {r.field} ({r.score:.2f})\n{given} -> {suggested}",
                     fontsize=8)
    if issues.empty:
        axes[0, 0].text(0.5, 0.5, "no suspected label issues", ha="center", va="center")
    fig.suptitle("suspected label issues, most suspicious first", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
