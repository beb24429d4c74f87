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


def file_digest(path: str | os.PathLike) -> str | None:
    path = Path(path)
    return hashlib.sha1(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


def table_digest(path: Path) -> str | None:
    """A CSV's digest as a table: a byte-order mark, CRLF line ends, trailing spaces and blank
    lines (what an editor or a spreadsheet adds on saving) do not change it."""
    if not path.is_file():
        return None
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return hashlib.sha1("\n".join(lines).encode()).hexdigest()[:16]


def people_digest(ids: Sequence[str]) -> str:
    """Which people a split holds, whatever their order."""
    return hashlib.sha256("\n".join(sorted(set(map(str, ids)))).encode()).hexdigest()[:16]


def train_fingerprint(root: str | os.PathLike, catalog: Any) -> dict[str, Any]:
    """What a run trained on: ``catalog`` is ``catalog.scan_train(root)``'s table (its image
    paths and people), before corrections, pseudo-labels or SMOTE rows join it."""
    paths, people = catalog["path"].tolist(), catalog["person_id"].nunique()
    h = hashlib.sha1()
    for p in sorted(paths):
        h.update(f"{relative(p)}\t{os.path.getsize(p)}\n".encode())
    return {"people": int(people), "images": len(paths), "images_digest": h.hexdigest()[:16],
            "train_csv": file_digest(Path(root) / "train" / "train.csv")}


def eval_fingerprint(root: str | os.PathLike) -> str | None:
    """The digest of ``eval/info.csv`` (None without one)."""
    return table_digest(Path(root) / "eval" / "info.csv")


def describe_difference(saved: dict[str, Any], now: dict[str, Any]) -> str:
    """``people 600 -> 40, images 4200 -> 280`` (the fields that differ)."""
    return ", ".join(f"{k} {saved.get(k)} -> {now.get(k)}" for k in now
                     if saved.get(k) != now.get(k))
