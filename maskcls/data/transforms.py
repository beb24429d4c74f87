"""Image pipelines, in two stages so the deterministic part can be cached:

1. ``base`` (here): full-size uint8 image -> optional centre (face) crop -> resize to
   ``image_size``. Per image, deterministic, so its output can be decoded once and cached.
2. ``BatchTransform`` (``maskcls.data.batch_transforms``): a uint8 batch on the training device
   -> (training only) random rotation, flip, colour and sharpness jitter, erasing ->
   normalised float.

Validation and prediction use ``base`` and the normalising ``BatchTransform`` only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

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
    # (h, w) fraction kept by a centre crop before resizing, e.g. [0.8, 0.7]
    center_crop: Sequence[float] | None = field(default=None)

    def __post_init__(self) -> None:
        limits = {"rotation": 180.0, "brightness": math.inf, "contrast": math.inf,
                  "saturation": math.inf, "hue": 0.5, "sharpness": 1.0, "hflip": 1.0,
                  "erasing": 1.0}
        for name, top in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not 0 <= value <= top:
                raise ConfigError(f"augment.{name} must be a number in [0, {top}], got {value!r}")


def check_image_size(image_size: Sequence[int]) -> tuple[int, int]:
    """``[H, W]`` of two positive integers, else a ValueError naming ``data.image_size``."""
    ok = (isinstance(image_size, Sequence) and not isinstance(image_size, str)
          and len(image_size) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in image_size))
    if not ok:
        raise ConfigError(
            f"data.image_size must be two positive integers [height, width], got {image_size!r}; "
            "e.g. data.image_size=[128,96]"
        )
    return int(image_size[0]), int(image_size[1])


def base_transform(image_size: Sequence[int], center_crop: Sequence[float] | None = None
                   ) -> v2.Transform:
    h, w = check_image_size(image_size)
    ops: list[v2.Transform] = []
    fh, fw = 1.0, 1.0
    if center_crop:
        crop = _FractionCenterCrop(center_crop)
        ops.append(crop)
        fh, fw = crop.fraction
    ops.append(v2.Resize((h, w), antialias=True))
    pipeline = v2.Compose(ops)
    # The smallest source size that still crops and resizes down (see dataset.read_rgb).
    pipeline.decode_size = (math.ceil(h / fh), math.ceil(w / fw))
    return pipeline


class _FractionCenterCrop(v2.Transform):
    """Centre crop keeping a fraction of height and width (faces sit in the middle of the
    competition photos), so it works for any input size."""

    def __init__(self, fraction: Sequence[float]) -> None:
        super().__init__()
        fh, fw = (float(fraction[0]), float(fraction[1]))
        if not (0 < fh <= 1 and 0 < fw <= 1):
            raise ConfigError(
                f"augment.center_crop must be two fractions in (0, 1], got {fraction}")
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
