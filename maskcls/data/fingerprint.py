"""What identifies a data tree's content, whatever folder it lies in: recorded in every
checkpoint, so a resume on other data is refused and a prediction on another eval set says so.

Training: the number of people and images and a digest of every image's path (relative to the
root) and size, and of ``train/train.csv``. Eval: the digest of ``eval/info.csv``. A copy or a
move of the tree keeps both; an added, removed or re-encoded image changes the training one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maskcls.data.face_boxes import relative


def _file_digest(path: Path) -> str | None:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


def train_fingerprint(root: str | os.PathLike, paths: Sequence[str],
                      people: int) -> dict[str, Any]:
    """``paths``: the catalog's image paths (under ``root``); ``people``: its person count."""
    h = hashlib.sha1()
    for p in sorted(paths):
        h.update(f"{relative(p)}\t{os.path.getsize(p)}\n".encode())
    return {"people": int(people), "images": len(paths), "images_digest": h.hexdigest()[:16],
            "train_csv": _file_digest(Path(root) / "train" / "train.csv")}


def eval_fingerprint(root: str | os.PathLike) -> str | None:
    """The digest of ``eval/info.csv`` (None without one)."""
    return _file_digest(Path(root) / "eval" / "info.csv")


def describe_difference(saved: dict[str, Any], now: dict[str, Any]) -> str:
    """``people 600 -> 40, images 4200 -> 280`` (the fields that differ)."""
    return ", ".join(f"{k} {saved.get(k)} -> {now.get(k)}" for k in now
                     if saved.get(k) != now.get(k))
