"""Face boxes from a CSV (``python -m maskcls.faces`` or any detector): reading and cropping.

A row is ``path, x0, y0, x1, y1[, source]``; ``path`` is relative to the data root
(``train/images/<folder>/<file>`` or ``eval/images/<file>``), so one file serves every copy of
a tree. Each image is cropped to its box grown by ``margin`` on every side and widened or
heightened to the model's aspect ratio (no distortion when resizing), within the image.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from maskcls.errors import DataLayoutError

if TYPE_CHECKING:  # only annotations: python -m maskcls.faces --help loads no torch
    import torch

REQUIRED = ["path", "x0", "y0", "x1", "y1"]


def _is_relative_image_path(path: str) -> bool:
    parts = Path(path).parts
    return (not Path(path).is_absolute() and ".." not in parts and len(parts) >= 3
            and parts[0] in ("train", "eval") and parts[1] == "images")


def relative(path: str) -> str:
    """``train/images/...`` or ``eval/images/...``: the part of a path a box file keys on."""
    parts = Path(path).parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] in ("train", "eval") and parts[i + 1] == "images":
            return "/".join(parts[i:])
    raise DataLayoutError(f"{path} is not under train/images or eval/images of a data root")


class FaceBoxes:
    """The boxes of one CSV, by relative path; ``digest`` identifies its content."""

    def __init__(self, csv: str | os.PathLike) -> None:
        self.path = Path(os.path.expanduser(str(csv)))
        if not self.path.is_file():
            raise DataLayoutError(f"data.face_boxes={csv}: no such file. Write it with "
                                  "`python -m maskcls.faces <data root>`")
        raw = self.path.read_bytes()
        self.digest = hashlib.sha1(raw).hexdigest()[:16]
        try:
            table = pd.read_csv(io.BytesIO(raw))
        except (ValueError, pd.errors.ParserError) as e:
            raise DataLayoutError(f"data.face_boxes={self.path} cannot be read ({e})") from None
        missing = [c for c in REQUIRED if c not in table.columns]
        if missing:
            raise DataLayoutError(f"data.face_boxes={self.path} lacks column(s) "
                                  f"{', '.join(missing)}; expected {', '.join(REQUIRED)}[, source]")
        coords = table[REQUIRED[1:]].apply(pd.to_numeric, errors="coerce")
        finite = np.isfinite(coords.to_numpy(dtype=np.float64)).all(axis=1)
        bad = ~finite | (coords["x1"] <= coords["x0"]).to_numpy() | \
            (coords["y1"] <= coords["y0"]).to_numpy() | (coords < 0).any(axis=1).to_numpy()
        self._refuse(table, bad, "without a box of finite pixels 0 <= x0 < x1, 0 <= y0 < y1")
        paths = table["path"].astype(str)
        outside = ~paths.map(_is_relative_image_path).to_numpy()
        self._refuse(table, outside, "whose path is not relative to the data root (paths look "
                     "like train/images/<folder>/mask1.jpg or eval/images/<file>, with no "
                     "leading / and no ..)")
        key = coords.round(3).astype(str).agg(",".join, axis=1)
        conflict = paths.duplicated(keep=False) & \
            (key.groupby(paths).transform("nunique") > 1)
        self._refuse(table, conflict.to_numpy(), "that give another box for an image already "
                     "listed; keep one row per image")
        self.boxes = dict(zip(paths, coords.itertuples(index=False, name=None), strict=True))

    def _refuse(self, table: pd.DataFrame, bad: np.ndarray, what: str) -> None:
        if bad.any():
            row = int(bad.argmax())
            raise DataLayoutError(f"data.face_boxes={self.path}: {int(bad.sum())} row(s) {what} "
                                  f"(first: line {row + 2}, {table['path'].iloc[row]})")

    def check_covers(self, paths: Sequence[str]) -> None:
        """Every image has a box; else one error listing how many do not."""
        missing = [p for p in paths if relative(p) not in self.boxes]
        if missing:
            raise DataLayoutError(
                f"data.face_boxes={self.path} has no box for {len(missing)} of {len(paths)} "
                f"images (e.g. {relative(missing[0])}); run `python -m maskcls.faces <data root>`"
                " again for this tree")

    def crop(self, image: torch.Tensor, path: str, margin: float,
             aspect: float) -> torch.Tensor:
        """``image`` (C, H, W) cut to the box of ``path``: grown by ``margin`` of its size on
        every side, then to ``aspect`` (height / width), clipped to the image."""
        x0, y0, x1, y1 = self.boxes[relative(path)]
        h, w = image.shape[-2:]
        bw, bh = (x1 - x0) * (1 + 2 * margin), (y1 - y0) * (1 + 2 * margin)
        if bh / bw < aspect:
            bh = bw * aspect
        else:
            bw = bh / aspect
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        left, right = max(0, round(cx - bw / 2)), min(w, round(cx + bw / 2))
        top, bottom = max(0, round(cy - bh / 2)), min(h, round(cy + bh / 2))
        if right - left < 1 or bottom - top < 1:
            raise DataLayoutError(f"data.face_boxes={self.path}: the box of {relative(path)} "
                                  f"({x0}, {y0}, {x1}, {y1}) lies outside its {w}x{h} image")
        return image[..., top:bottom, left:right]
