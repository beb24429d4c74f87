"""Augmentation settings, the centre crop and normalisation statistics.

Images travel in two stages so the deterministic part can be cached:

1. per image (``maskcls.data.pipeline``): decode -> optional crop (the centre, or the face box
   of ``data.face_boxes``) -> resize to
   ``image_size``; deterministic, so its uint8 output is decoded once and cached.
2. per batch (``maskcls.data.batch_transforms``): a uint8 batch on the training device ->
   (training only) random rotation, flip, colour and sharpness jitter, erasing -> normalised.

Validation and prediction use stage 1 and the normalisation of stage 2 only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchvision.transforms import v2

from maskcls.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class AugmentConfig:
    """One augmentation preset (``conf/augment/*.yaml``). Zero switches an op off."""

    rotation: float = 10.0  # degrees, +-
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    sharpness: float = 0.0  # probability of a random sharpness change
    hflip: float = 0.5  # probability
    erasing: float = 0.0  # probability of random erasing
    scale: float = 0.0  # zoom in or out by up to this fraction (0.2: x0.83..x1.2)
    translate: float = 0.0  # shift by up to this fraction of the width and height
    mixup: float = 0.0  # mixup's Beta(alpha, alpha); 0 = off
    cutmix: float = 0.0  # cutmix's Beta(alpha, alpha); 0 = off
    mix_prob: float = 1.0  # share of batches mixed (when mixup or cutmix is on)
    mix_switch: float = 0.5  # with both on: share of mixed batches that use cutmix

    def __post_init__(self) -> None:
        limits = {"rotation": 180.0, "brightness": math.inf, "contrast": math.inf,
                  "saturation": math.inf, "hue": 0.5, "sharpness": 1.0, "hflip": 1.0,
                  "erasing": 1.0, "scale": 0.9, "translate": 0.5, "mixup": math.inf,
                  "cutmix": math.inf, "mix_prob": 1.0, "mix_switch": 1.0}
        for name, top in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not 0 <= value <= top:
                raise ConfigError(f"augment.{name} must be a number in [0, {top}], got {value!r}")


class FractionCenterCrop(v2.Transform):
    """Centre crop keeping a fraction of height and width (faces sit in the middle of the
    competition photos), so it works for any input size."""

    def __init__(self, fraction: Sequence[float]) -> None:
        super().__init__()
        fh, fw = (float(fraction[0]), float(fraction[1]))
        if not (0 < fh <= 1 and 0 < fw <= 1):
            raise ConfigError(
                f"data.center_crop must be two fractions in (0, 1], got {fraction}")
        self.fraction = (fh, fw)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        return v2.functional.center_crop(
            img, [max(1, round(h * self.fraction[0])), max(1, round(w * self.fraction[1]))])


def mean_std(images: torch.Tensor | Sequence[torch.Tensor]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std over every pixel of uint8 CHW images (or an NCHW batch).

    Pools pixel sums (float64), so it is the std of all pixels, not the mean of per-image stds.
    """
    total = torch.zeros(3, dtype=torch.float64)
    total_sq = torch.zeros(3, dtype=torch.float64)
    count = 0
    for img in images:
        x = img.to(torch.float64).div_(255.0).reshape(3, -1)
        total += x.sum(1)
        total_sq += (x * x).sum(1)
        count += x.shape[1]
    if count == 0:
        raise ConfigError("cannot compute normalisation statistics from zero images")
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(0).sqrt()
    return mean.tolist(), std.tolist()
