"""Decode images and serve (tensor, label) pairs, optionally from a decoded-pixel cache."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as F


class ImageReadError(RuntimeError):
    """An image file could not be decoded; the message names it."""


JPEG_SUFFIXES = (".jpg", ".jpeg")


def read_rgb(path: str, min_size: Sequence[int] | None = None) -> torch.Tensor:
    """uint8 CHW RGB tensor. Greyscale, RGBA, palette and CMYK files are converted to RGB.

    With ``min_size`` ``(h, w)``, a JPEG is decoded at the smallest of its 1/1, 1/2, 1/4, 1/8
    scales that is still at least that large (libjpeg scales in the DCT domain): a 384x512
    photo meant for 96x72 decodes at 96x128, several times faster than decoding it whole.
    """
    if min_size is not None and path.lower().endswith(JPEG_SUFFIXES):
        try:
            with Image.open(path) as im:
                im.draft("RGB", (int(min_size[1]), int(min_size[0])))
                return F.pil_to_tensor(im.convert("RGB"))
        except Exception:  # noqa: BLE001, S110 - the full decode below reports the problem
            pass
    try:
        return decode_image(path, mode=ImageReadMode.RGB)
    except Exception:  # noqa: BLE001 - torchvision's decoders miss some variants; PIL decides
        pass
    try:
        with Image.open(path) as im:
            return F.pil_to_tensor(im.convert("RGB"))
    except Exception as e:
        raise ImageReadError(
            f"{path}: cannot decode image ({type(e).__name__}: {e}). Replace or remove the file "
            "(data.verify=true lists every unreadable file before training)."
        ) from e


class ImageDataset(Dataset):
    """Items ``(uint8 image, target)`` for every row of ``paths``; ``targets`` -1 means
    unlabelled. Augmentation and normalisation run later, on whole batches on the training
    device (``maskcls.data.batch_transforms``), so workers pass 4x fewer bytes.

    With ``cache`` (uint8 NCHW, row-aligned with ``paths``) the ``base`` stage is skipped.
    """

    def __init__(self, paths: Sequence[str], targets: Sequence[int] | None,
                 base: Callable, cache: torch.Tensor | None = None) -> None:
        self.paths = list(paths)
        self.targets = (np.asarray(targets, dtype=np.int64) if targets is not None
                        else np.full(len(self.paths), -1, dtype=np.int64))
        self.base = base
        self.cache = cache

    def __len__(self) -> int:
        return len(self.paths)

    def pixels(self, i: int) -> torch.Tensor:
        """uint8 image after the deterministic ``base`` stage."""
        if self.cache is not None:
            return self.cache[i]
        return self.base(read_rgb(self.paths[i], getattr(self.base, "decode_size", None)))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.pixels(i), int(self.targets[i])


class _Readable(Dataset):
    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> str:
        try:
            read_rgb(self.paths[i])
        except ImageReadError as e:
            return str(e.__cause__ or e)
        return ""


def unreadable_images(paths: Sequence[str], num_workers: int = 0) -> list[tuple[str, str]]:
    """(path, reason) for every image that does not decode; decodes each file once."""
    loader = DataLoader(_Readable(paths), batch_size=64, num_workers=num_workers,
                        collate_fn=list)
    reasons = [r for batch in loader for r in batch]
    return [(p, r) for p, r in zip(paths, reasons, strict=True) if r]


def decode_all(paths: Sequence[str], base: Callable, image_size: Sequence[int],
               num_workers: int = 0, batch_size: int = 64) -> torch.Tensor:
    """Decode and ``base``-transform every image once into one preallocated uint8 NCHW
    tensor."""
    out = torch.empty(len(paths), 3, int(image_size[0]), int(image_size[1]), dtype=torch.uint8)
    loader = DataLoader(ImageDataset(paths, None, base), batch_size=batch_size,
                        num_workers=num_workers)
    pos = 0
    for batch, _ in loader:
        out[pos:pos + len(batch)] = batch
        pos += len(batch)
    return out
