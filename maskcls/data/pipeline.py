"""The evaluation pipeline: how a photo becomes the model's input, augmentation aside.

decode (``read_rgb``) -> optional crop (to the face box of a ``face_boxes`` CSV, or to the
centre) -> resize to ``image_size`` -> uint8 pixels (cacheable) -> normalise with ``mean`` /
``std`` on the batch (``BatchTransform``).

One ``Pipeline`` object owns these settings. The datamodule builds it from the config, the
caches key their files by it, every checkpoint records it (``to_state``), and prediction
rebuilds it from there (``from_state``), so training and prediction read an image the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torchvision.transforms import v2

from maskcls.config import check_value
from maskcls.data.batch_transforms import BatchTransform, check_normalisation
from maskcls.data.dataset import read_rgb
from maskcls.data.face_boxes import FaceBoxes
from maskcls.data.transforms import IMAGENET_MEAN, IMAGENET_STD, FractionCenterCrop
from maskcls.errors import ConfigError, DataLayoutError


def check_image_size(image_size: Sequence[int]) -> tuple[int, int]:
    """``[H, W]`` of two positive integers, else an error naming ``data.image_size``."""
    ok = (isinstance(image_size, Sequence) and not isinstance(image_size, str)
          and len(image_size) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in image_size))
    if not ok:
        raise ConfigError(
            f"data.image_size must be two positive integers [height, width], got {image_size!r}; "
            "e.g. data.image_size=[128,96]"
        )
    return int(image_size[0]), int(image_size[1])


@dataclass(frozen=True)
class Pipeline:
    """``image_size`` ``(H, W)``; ``center_crop`` the ``(h, w)`` fractions kept before resizing;
    ``mean`` / ``std`` of the normalisation; ``face_boxes`` a box CSV (``maskcls.faces``) whose
    boxes, grown by ``face_margin``, are cropped instead of the centre."""

    image_size: tuple[int, int]
    center_crop: tuple[float, float] | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    face_boxes: str | None = None
    face_margin: float = 0.25

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_size", check_image_size(self.image_size))
        crop = [FractionCenterCrop(self.center_crop)] if self.center_crop else []  # checked
        object.__setattr__(self, "center_crop", crop[0].fraction if crop else None)
        check_normalisation(self.mean, self.std)
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        resize = v2.Resize(self.image_size, antialias=True)
        object.__setattr__(self, "_resize", v2.Compose([*crop, resize]))
        boxes = None
        if self.face_boxes is not None:
            if self.center_crop:
                raise ConfigError("data.center_crop and data.face_boxes both crop the photo; "
                                  "keep one (data.center_crop=null with face boxes)")
            check_value("data.face_margin", self.face_margin, "number", 0, 2)
            boxes = FaceBoxes(self.face_boxes)
            object.__setattr__(self, "face_boxes", str(boxes.path))
        object.__setattr__(self, "_boxes", boxes)

    # ---------------------------------------------------------------- per image (cacheable)
    @property
    def boxes(self) -> FaceBoxes | None:
        return self._boxes

    @property
    def decode_size(self) -> tuple[int, int] | None:
        """The smallest source size that still crops and resizes down (JPEGs are decoded at
        the smallest DCT scale that covers it, see ``read_rgb``); None: full size (face
        boxes are in the full image's pixels)."""
        if self._boxes is not None:
            return None
        fh, fw = self.center_crop or (1.0, 1.0)
        return math.ceil(self.image_size[0] / fh), math.ceil(self.image_size[1] / fw)

    def resize(self, image: torch.Tensor) -> torch.Tensor:
        """A decoded uint8 image -> cropped and resized uint8 pixels."""
        return self._resize(image)

    def read(self, path: str) -> torch.Tensor:
        """The uint8 pixels of one file, as the model's input before normalisation."""
        image = read_rgb(path, self.decode_size)
        if self._boxes is not None:
            aspect = self.image_size[0] / self.image_size[1]
            image = self._boxes.crop(image, path, self.face_margin, aspect)
        return self.resize(image)

    @property
    def pixels_key(self) -> str:
        """What the uint8 pixels depend on (the caches' key; normalisation is not part of it)."""
        key = f"{self.image_size[0]}x{self.image_size[1]}|crop={self.center_crop}"
        if self._boxes is not None:
            key += f"|faces={self._boxes.digest}+{self.face_margin}"
        return key

    # --------------------------------------------------------------------- per batch
    def normaliser(self) -> BatchTransform:
        return BatchTransform(None, self.mean, self.std)

    def with_normalisation(self, mean: Sequence[float], std: Sequence[float]) -> Pipeline:
        return replace(self, mean=tuple(mean), std=tuple(std))

    # ------------------------------------------------------------------ checkpoints
    def to_state(self) -> dict[str, Any]:
        return {"image_size": list(self.image_size),
                "center_crop": list(self.center_crop) if self.center_crop else None,
                "mean": list(self.mean), "std": list(self.std),
                "face_boxes": self.face_boxes, "face_margin": self.face_margin,
                "face_boxes_digest": self._boxes.digest if self._boxes is not None else None}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], face_boxes: str | None = None) -> Pipeline:
        """``face_boxes``: the box CSV to use instead of the recorded one (another copy of
        the data, boxes of the eval images written later)."""
        recorded = state.get("face_boxes")
        pipeline = cls(tuple(state["image_size"]), state.get("center_crop"),
                       tuple(state["mean"]), tuple(state["std"]),
                       face_boxes if (face_boxes and recorded) else recorded,
                       state.get("face_margin", 0.25))
        if not face_boxes:
            pipeline.check_boxes_unchanged(state)
        return pipeline

    def check_boxes_unchanged(self, state: Mapping[str, Any]) -> None:
        """The box file has the content recorded in ``state`` (edited boxes would crop
        otherwise than in training, silently)."""
        saved = state.get("face_boxes_digest")
        if saved and self._boxes is not None and self._boxes.digest != saved:
            raise DataLayoutError(
                f"{self.face_boxes} has changed since the model was trained (content digest "
                f"{saved} -> {self._boxes.digest}); its boxes would crop otherwise than in "
                "training. Restore it, or pass the file explicitly (face_boxes= for predict.py, "
                "export) to use it as it is now")
