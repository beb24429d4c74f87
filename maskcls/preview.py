"""Look at the data as a training run sees it, before training.

    python -m maskcls.preview [key=value ...] [--out DIR] [--per-class 4] [--variants 5]
    python -m maskcls.preview data.root=/path/to/data augment=strong --out /tmp/look

Takes the same overrides as ``train.py`` and writes into ``--out`` (default: the working
folder):

* ``preview_classes.png``: images of each of the 18 classes, as the eval pipeline reads them
  (size, centre or face crop);
* ``preview_augment.png``: a few of those images, then the same images through the run's
  training augmentation (the ``augment`` group) several times;
* ``preview_face_boxes.png`` (with ``data.face_boxes``): the boxes drawn on the photos.

It builds the datamodule's pipeline and batch augmentation from the config, the code a run
uses, not a copy of it, and reads only the images it shows.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from maskcls import labels
from maskcls.errors import one_line_errors

if TYPE_CHECKING:  # torch loads in write(): --help stays instant
    import torch

CONF = Path(__file__).resolve().parents[1] / "conf"


def _datamodule(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from maskcls.run.inputs import check_data_root, settle
    from maskcls.training.recipe import instantiate_plainly

    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=.", *overrides])
    settle(cfg)
    check_data_root(cfg)
    dm = instantiate_plainly(cfg.data, _convert_="all")
    dm.prepare_data()  # the default synthetic tree, generated on first use
    return dm


def _sample(catalog: pd.DataFrame, per_class: int, seed: int = 0) -> pd.DataFrame:
    shuffled = catalog.sample(frac=1.0, random_state=seed)
    return shuffled.groupby("label").head(per_class).sort_values(["label", "path"])


def _display(batch: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> np.ndarray:
    """Normalised images back to 0..1 RGB, (N, H, W, 3)."""
    x = batch.float() * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)
    return x.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def write(overrides: list[str], out: Path, per_class: int = 4, variants: int = 5,
          seed: int = 0) -> list[Path]:
    import torch

    from maskcls.analysis.plots import plt, title_and_fit
    from maskcls.data import catalog as cat
    from maskcls.data.seeding import seed_rngs

    dm = _datamodule(overrides)
    out.mkdir(parents=True, exist_ok=True)  # after the overrides are known to be good
    catalog = cat.scan_train(dm.root, dm.age_bounds)
    chosen = _sample(catalog, per_class, seed)
    pixels = torch.stack([dm.pipeline.read(p) for p in chosen["path"]])
    mean, std = torch.tensor(dm.pipeline.mean), torch.tensor(dm.pipeline.std)
    written = []

    rows = sorted(chosen["label"].unique())
    fig, axes = plt.subplots(len(rows), per_class, figsize=(1.6 * per_class, 1.9 * len(rows)),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, label in enumerate(rows):
        idx = np.flatnonzero(chosen["label"].to_numpy() == label)
        axes[r, 0].set_title(labels.CLASS_NAMES[label], fontsize=8, loc="left")
        for ax, i in zip(axes[r], idx, strict=False):
            ax.imshow(pixels[i].permute(1, 2, 0).numpy())
    title_and_fit(fig, f"the classes at {dm.pipeline.image_size[0]}x"
                       f"{dm.pipeline.image_size[1]}, as the eval pipeline reads them")
    written.append(out / "preview_classes.png")
    fig.savefig(written[-1], dpi=90)
    plt.close(fig)

    shown = pixels[:: max(1, len(pixels) // 6)][:6]
    seed_rngs(seed, 0)
    views = [_display(dm.eval_transform(shown), mean, std)]
    views += [_display(dm.train_transform(shown), mean, std) for _ in range(variants)]
    fig, axes = plt.subplots(len(views), len(shown), figsize=(1.6 * len(shown),
                                                              1.9 * len(views)), squeeze=False)
    shown_labels = chosen["label"].to_numpy()[:: max(1, len(pixels) // 6)][:6]
    for r, view in enumerate(views):
        for c, image in enumerate(view):
            axes[r, c].imshow(image)
            axes[r, c].axis("off")
        axes[r, 0].text(-0.06, 0.5, "as evaluated" if r == 0 else f"augmented #{r}",
                        transform=axes[r, 0].transAxes, rotation=90, ha="right",
                        va="center", fontsize=9)
    for c, label in enumerate(shown_labels):  # every column says its class
        axes[0, c].set_title(labels.CLASS_NAMES[label].replace("/", "\n", 1), fontsize=9)
    title_and_fit(fig, "the training augmentation (augment group) on the same images")
    written.append(out / "preview_augment.png")
    fig.savefig(written[-1], dpi=90)
    plt.close(fig)

    if dm.pipeline.boxes is not None:
        written.append(_face_boxes(chosen["path"].tolist()[:12], dm.pipeline.boxes,
                                   out / "preview_face_boxes.png"))
    return written


def _face_boxes(paths: list[str], boxes, path: Path) -> Path:
    from matplotlib.patches import Rectangle

    from maskcls.analysis.plots import plt, title_and_fit
    from maskcls.data.dataset import read_rgb
    from maskcls.data.face_boxes import relative

    cols = 6
    rows = (len(paths) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, p in zip(axes.ravel(), paths, strict=False):
        ax.imshow(read_rgb(p).permute(1, 2, 0).numpy())
        box = boxes.boxes.get(relative(p))
        if box is not None:
            x0, y0, x1, y1 = box
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="lime", lw=2))
        ax.set_title(Path(p).name, fontsize=9)
    title_and_fit(fig, "face boxes (data.face_boxes)")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m maskcls.preview", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="train.py's key=value overrides")
    p.add_argument("--out", default=".", help="folder for the pictures (default: here)")
    p.add_argument("--per-class", type=int, default=4, help="images per class")
    p.add_argument("--variants", type=int, default=5, help="augmented copies of each image")
    a = p.parse_args(argv)
    out = Path(a.out).expanduser()
    if out.exists() and not out.is_dir():
        p.error(f"--out {out} is a file, not a folder: give a folder (it is created if missing)")
    if a.per_class < 1 or a.variants < 1:
        p.error("--per-class and --variants must be >= 1")
    with one_line_errors():
        for path in write(a.overrides, out, a.per_class, a.variants):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
