"""Galleries of photos: a run's ``errors.png`` (the wrong and the least confident validation
images) and the label-issue finder's ``label_issues.png``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from maskcls import labels
from maskcls.analysis.plots import plt, title_and_fit  # pyplot with the file-only backend set

PROB_COLUMNS = [f"prob_{c}" for c in range(labels.NUM_CLASSES)]


def _side_by_side(paths: list[str]) -> Image.Image | None:
    images = [Image.open(p).convert("RGB") for p in paths if Path(p).exists()]
    if not images:
        return None
    h = min(im.height for im in images)
    images = [im.resize((round(im.width * h / im.height), h)) for im in images]
    canvas = Image.new("RGB", (sum(im.width for im in images), h))
    x = 0
    for im in images:
        canvas.paste(im, (x, 0))
        x += im.width
    return canvas


def errors_png(predictions: pd.DataFrame, path: Path, per_class: int = 4,
               max_rows: int = 12) -> list[tuple[int, int]]:
    """From ``val_predictions.csv``: per true class (the rarest first), the wrong
    predictions, then the least confident right ones, up to ``per_class`` tiles; each titled
    with its predicted class and that class's probability. Returns the (class, tiles) rows
    drawn, top to bottom."""
    probs = predictions[PROB_COLUMNS].to_numpy()
    table = predictions.assign(confidence=probs.max(1), p_true=probs[np.arange(len(probs)),
                                                                     predictions["label"]])
    table["wrong"] = table["pred"] != table["label"]
    support = table["label"].value_counts()
    shown = []
    for cls in sorted(support.index, key=lambda c: (support[c], c)):
        rows = table[table["label"] == cls].sort_values(["wrong", "p_true"],
                                                        ascending=[False, True])
        rows = rows[rows["wrong"] | (rows["p_true"] < 0.9)].head(per_class)
        if len(rows):
            shown.append((cls, rows))
    shown = shown[:max_rows]
    n_rows = max(1, len(shown))
    fig, axes = plt.subplots(n_rows, per_class, figsize=(2.4 * per_class, 2.6 * n_rows),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, (cls, rows) in enumerate(shown):
        axes[r, 0].text(-0.08, 0.5, f"true {labels.CLASS_NAMES[cls]}\n(n={support[cls]})",
                        transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=9)
        for ax, row in zip(axes[r], rows.itertuples(index=False), strict=False):
            image = _side_by_side([row.path])
            if image is not None:
                ax.imshow(image)
            colour = "tab:red" if row.wrong else "tab:gray"
            ax.set_title(f"{labels.CLASS_NAMES[row.pred]} {row.confidence:.2f}", fontsize=9,
                         color=colour)
    if not shown:
        axes[0, 0].text(0.5, 0.5, "every validation image right with p >= 0.9", ha="center")
    title_and_fit(fig, "validation errors, rarest classes first\nred: wrong, with the predicted "
                  "class and its probability; grey: right but unsure")
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return [(int(cls), len(rows)) for cls, rows in shown]


def label_issues_png(issues: pd.DataFrame, oof: pd.DataFrame, path: Path,
                     columns: int = 4) -> Path:
    """A gallery of suspected label issues: per person the ``normal`` shot (gender, age) or
    the two shots thought swapped (mask), titled with the given and suggested labels."""


    n = max(1, len(issues))
    rows = (n + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    shots = oof.set_index(["folder", "stem"])["path"]
    for ax, r in zip(axes.ravel(), issues.itertuples(index=False), strict=False):
        stems = ("incorrect_mask", "normal") if r.field == "mask" else ("normal",)
        image = _side_by_side([shots[(r.folder, s)] for s in stems
                               if (r.folder, s) in shots.index])
        if image is not None:
            ax.imshow(image)
        given, suggested = str(r.given), str(r.suggested)
        if r.field == "mask":
            given, suggested = "as named", "incorrect_mask <-> normal"
        ax.set_title(f"{r.person_id} {r.field} ({r.score:.2f})\n{given} -> {suggested}",
                     fontsize=8)
    if issues.empty:
        axes[0, 0].text(0.5, 0.5, "no suspected label issues", ha="center", va="center")
    title_and_fit(fig, "suspected label issues, most suspicious first")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
