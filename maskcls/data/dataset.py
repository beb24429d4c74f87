"""Decode images and serve (tensor, label) pairs, optionally from a decoded-pixel cache."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as F

from maskcls.data.parallel import steps
from maskcls.errors import ImageReadError

# Larger than any phone photo (a 50 MP camera); a bigger image is refused before it is
# decoded, since a small file can claim gigabytes of pixels (a "decompression bomb").
MAX_IMAGE_PIXELS = 50_000_000
EXIF_ORIENTATION = 0x0112
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # rotated by 90 degrees: width and height swap


def read_rgb(path: str, min_size: Sequence[int] | None = None) -> torch.Tensor:
    """uint8 CHW RGB tensor, upright: EXIF orientation is applied, as phone photos need.

    Greyscale, 16-bit, RGBA, palette (with or without transparency), CMYK files are converted
    to 8-bit RGB; of an animated or multi-frame file, the first frame is used. Images over
    ``MAX_IMAGE_PIXELS`` are refused unread.

    With ``min_size`` ``(h, w)``, a JPEG is decoded at the smallest of its 1/1, 1/2, 1/4, 1/8
    scales that is still at least that large (libjpeg scales in the DCT domain): a 384x512
    photo meant for 96x72 decodes at 96x128, several times faster than decoding it whole.
    """
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise ImageReadError(
                    f"{path}: {im.width}x{im.height} pixels is over the limit of "
                    f"{MAX_IMAGE_PIXELS:,} (maskcls.data.dataset.MAX_IMAGE_PIXELS); shrink the "
                    "image, or remove it")
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            orientation = im.getexif().get(EXIF_ORIENTATION, 1)
            if min_size is not None and im.format == "JPEG":
                h, w = int(min_size[0]), int(min_size[1])
                if orientation in TRANSPOSING_ORIENTATIONS:
                    h, w = w, h
                im.draft("RGB", (w, h))
            upright = ImageOps.exif_transpose(im) if orientation in range(2, 9) else im
            return F.pil_to_tensor(_to_rgb(upright))
    except ImageReadError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the decoder says, name the file
        reason = str(e).replace(repr(str(path)), "").replace(str(path), "").strip()
        raise ImageReadError(
            f"{path}: cannot decode image ({type(e).__name__}: {reason}). Replace or remove the "
            "file (data.verify=true lists every unreadable file before training)."
        ) from e


def _to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB of any PIL mode."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16/32-bit greyscale: PIL's convert("RGB") clips to 255 (a white image); scale instead
        values = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or values.max() > 255 else 255.0
        grey = np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if im.mode in ("P", "PA", "LA", "La") or "transparency" in im.info:
        return im.convert("RGBA").convert("RGB")
    return im.convert("RGB")


class ImageDataset(Dataset):
    """Items ``(uint8 image, target, index)`` for every row of ``paths``; ``targets`` -1 means
    unlabelled, and the index lets outputs gathered from several processes be put back in
    dataset order. Augmentation and normalisation run later, on whole batches on the training
    device (``maskcls.data.batch_transforms``), so workers pass 4x fewer bytes.

    ``pipeline`` (a ``maskcls.data.pipeline.Pipeline``) reads each file; with ``cache``
    (uint8 NCHW, row-aligned with ``paths``) files are not read at all.
    """

    def __init__(self, paths: Sequence[str], targets: Sequence[int] | None,
                 pipeline: Any, cache: torch.Tensor | None = None) -> None:
        self.paths = list(paths)
        self.targets = (np.asarray(targets, dtype=np.int64) if targets is not None
                        else np.full(len(self.paths), -1, dtype=np.int64))
        self.pipeline = pipeline
        self.cache = cache

    def __len__(self) -> int:
        return len(self.paths)

    def pixels(self, i: int) -> torch.Tensor:
        """uint8 image after the deterministic, per-image part of the pipeline."""
        if self.cache is not None:
            return self.cache[i]
        return self.pipeline.read(self.paths[i])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        return self.pixels(i), int(self.targets[i]), i


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


def check_decodable(paths: Sequence[str], num_workers: int = 0) -> None:
    """``data.verify=true``: every image decodes, else one error listing those that do not."""
    bad = unreadable_images(paths, num_workers)
    if bad:
        listing = "\n".join(f"  {p}: {r}" for p, r in bad)
        raise ImageReadError(f"{len(bad)} of {len(paths)} images cannot be decoded; "
                             f"replace or remove them:\n{listing}")


def decode_all(paths: Sequence[str], pipeline: Any, num_workers: int = 0,
               batch_size: int = 64) -> torch.Tensor:
    """Read every image once through ``pipeline`` into one preallocated uint8 NCHW tensor."""
    h, w = pipeline.image_size
    out = torch.empty(len(paths), 3, h, w, dtype=torch.uint8)
    loader = DataLoader(ImageDataset(paths, None, pipeline), batch_size=batch_size,
                        num_workers=num_workers)
    pos = 0
    for batch, _, _ in steps(loader, "decoding images", total=len(loader)):
        out[pos:pos + len(batch)] = batch
        pos += len(batch)
    return out
