"""One prediction loop over one kind of object: a *scorer* turns a batch of uint8 pixels into
the 18 class probabilities. A checkpoint's model and an exported model are both scorers, so
test-time views (flips, crops), ensembling and the progress line are written once, here.

Scorers that read images the same way (image size and crop: ``Pipeline.pixels_key``) share a
pass over the eval set: each image is decoded once for all of them (a k-fold ensemble decodes
once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import functional as tvf

from maskcls.data.batch_transforms import BatchTransform
from maskcls.data.dataset import ImageDataset
from maskcls.data.pipeline import Pipeline
from maskcls.export.reader import ExportedModel
from maskcls.model.module import MaskClassifier
from maskcls.training.progress import progress_bar


@dataclass
class Scorer:
    """``probs(pixels)``: uint8 ``(N, 3, H, W)`` on the CPU -> float32 ``(N, 18)`` on the CPU;
    ``pipeline``: how its input pixels are read."""

    name: str
    pipeline: Pipeline
    probs: Callable[[torch.Tensor], torch.Tensor]


def checkpoint_scorer(name: str, model: MaskClassifier, pipeline: Pipeline,
                      device: torch.device) -> Scorer:
    """A trained module, normalising on ``device`` as in validation."""
    model = model.to(device).eval()
    normalise: BatchTransform = pipeline.normaliser().to(device)

    @torch.inference_mode()
    def probs(pixels: torch.Tensor) -> torch.Tensor:
        return model.probabilities(normalise(pixels.to(device, non_blocking=True))).cpu()

    return Scorer(name, pipeline, probs)


def exported_scorer(model: ExportedModel, pipeline: Pipeline) -> Scorer:
    """A ``maskcls.export`` file (normalisation inside its graph)."""
    return Scorer(model.path.name, pipeline,
                  lambda pixels: torch.from_numpy(np.asarray(model.run(pixels.numpy()))))


def device_for(accelerator: str) -> torch.device:
    """``auto``: the GPU where there is one."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def views(pixels: torch.Tensor, tta: bool = False, crop: float | None = None
          ) -> list[torch.Tensor]:
    """The views of a uint8 ``(N, 3, H, W)`` batch whose probabilities are averaged: the
    batch; with ``crop``, torchvision's five crops (four corners and the centre) of ``crop``
    of its height and width, each resized back to ``H x W``, as the training zoom and shift
    show a face off-centre; with ``tta``, each view's mirror image (a face is nearly
    symmetric, its label is not changed by a flip)."""
    out = [pixels]
    if crop:
        h, w = pixels.shape[-2:]
        size = [max(1, round(h * crop)), max(1, round(w * crop))]
        out += [tvf.resize(c, [h, w], antialias=True) for c in tvf.five_crop(pixels, size)]
    if tta:
        out += [v.flip(-1) for v in out]
    return out


def _with_tta(scorer: Scorer, pixels: torch.Tensor, tta: bool,
              crop: float | None = None) -> torch.Tensor:
    seen = views(pixels, tta, crop)
    return sum(scorer.probs(v) for v in seen) / len(seen)


def eval_probabilities(scorers: Sequence[Scorer], eval_df: pd.DataFrame, tta: bool = False,
                       batch_size: int = 128, num_workers: int = 2,
                       tta_crop: float | None = None) -> list[np.ndarray]:
    """One ``(N, 18)`` probability array per scorer, rows in ``eval_df`` order; ``tta`` and
    ``tta_crop`` choose the views averaged (``views``)."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(scorers):
        groups.setdefault(s.pipeline.pixels_key, []).append(i)
    out: list[np.ndarray | None] = [None] * len(scorers)
    for members in groups.values():
        pipeline = scorers[members[0]].pipeline
        loader = DataLoader(ImageDataset(eval_df["path"].tolist(), None, pipeline),
                            batch_size=batch_size, num_workers=num_workers,
                            pin_memory=torch.cuda.is_available())
        names = ", ".join(scorers[i].name for i in members)
        parts: dict[int, list[torch.Tensor]] = {i: [] for i in members}
        for batch in progress_bar(loader, f"Predicting ({names})"):
            for i in members:
                parts[i].append(_with_tta(scorers[i], batch[0], tta, tta_crop))
        for i in members:
            out[i] = torch.cat(parts[i]).numpy()
    return out
