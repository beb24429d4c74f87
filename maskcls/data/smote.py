"""SMOTE for the rare classes (``data.oversample=smote``): imbalanced-learn's SMOTE on the
cached, resized uint8 pixels of the training split.

Each class with fewer training images than the median class gets synthetic images up to the
median: SMOTE blends an image with one of its ``k`` nearest same-class neighbours in pixel
space (a random point on the line between them). They are made once, when the data is set up
(seeded by the split and run seeds), and train as people of their own, never validation.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from maskcls import labels
from maskcls.data import catalog as cat

PERSON_PREFIX = "smote:"
log = logging.getLogger(__name__)


def append_smote(catalog: pd.DataFrame, train_rows: np.ndarray, cache: torch.Tensor, seed: int
                 ) -> tuple[pd.DataFrame, np.ndarray, torch.Tensor]:
    """The catalog, training rows and pixel cache with synthetic rare-class images appended
    (made from the cached training pixels; they train as people of their own)."""
    images, classes = smote_images(cache[torch.as_tensor(train_rows)],
                                   catalog["label"].to_numpy()[train_rows], seed=seed)
    log.info("SMOTE: %d synthetic images for %d rare classes", len(classes),
             len(np.unique(classes)))
    rows = np.concatenate([train_rows, len(catalog) + np.arange(len(classes))])
    return (pd.concat([catalog, smote_rows(classes)], ignore_index=True), rows,
            torch.cat([cache, images]))


def smote_images(pixels: torch.Tensor, targets: np.ndarray, seed: int, k: int = 5
                 ) -> tuple[torch.Tensor, np.ndarray]:
    """Synthetic ``(uint8 images, classes)`` that raise every class below the median count to
    the median. ``pixels``: the training images, uint8 ``(N, 3, H, W)``."""
    from imblearn.over_sampling import SMOTE

    counts = np.bincount(targets, minlength=labels.NUM_CLASSES)
    present = counts[counts > 0]
    target = int(np.median(present))
    # a class needs two images to blend; SMOTE's k shrinks to what the rarest class has
    rare = [c for c in range(labels.NUM_CLASSES) if 2 <= counts[c] < target]
    if not rare:
        return pixels[:0].clone(), np.zeros(0, dtype=np.int64)
    # rare classes and one larger class (SMOTE needs a class to balance against)
    big = int(np.argmax(counts))
    rows = np.flatnonzero(np.isin(targets, [*rare, big]))
    x = pixels[torch.as_tensor(rows)].reshape(len(rows), -1).numpy().astype(np.float32)
    y = targets[rows]
    neighbours = max(1, min(k, int(counts[rare].min()) - 1))
    sampler = SMOTE(sampling_strategy={c: target for c in rare}, k_neighbors=neighbours,
                    random_state=seed)
    x_all, y_all = sampler.fit_resample(x, y)
    new_x, new_y = x_all[len(x):], y_all[len(x):]  # imblearn appends the synthetic rows
    images = torch.from_numpy(np.clip(np.rint(new_x), 0, 255).astype(np.uint8))
    return images.reshape(len(new_x), *pixels.shape[1:]), new_y.astype(np.int64)


def smote_rows(classes: np.ndarray) -> pd.DataFrame:
    """Catalog rows of synthetic images (each its own person, no file)."""
    ids = [f"{PERSON_PREFIX}{i}" for i in range(len(classes))]
    return cat.extra_rows(ids, ids, classes, "smote")
