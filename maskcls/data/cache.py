"""Decoded-image caches: decode and resize every image once, then augment cached uint8 pixels.

A 384x512 JPEG costs milliseconds to decode and resize; the model at 96x72 or 128x96 costs about
as much. Decoding once takes that work out of every later epoch.

* ``ram``: one uint8 N x 3 x H x W tensor in memory; refused up front when it would not fit.
* ``disk``: the same array as a memory-mapped file under ``cache_dir``, reused across runs.
  Rows are keyed by file path, size and modification time, so an edited, added or removed
  image is noticed and only those rows are decoded again.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from filelock import FileLock

from maskcls import atomic
from maskcls.data.dataset import decode_all
from maskcls.data.pipeline import Pipeline
from maskcls.errors import NotEnoughMemoryError

log = logging.getLogger(__name__)
GiB = 2**30


def cache_bytes(n_images: int, image_size: Sequence[int]) -> int:
    return n_images * 3 * int(image_size[0]) * int(image_size[1])


def available_memory() -> int:
    """Bytes of RAM available to new allocations (Linux MemAvailable, else free pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_ram(n_images: int, image_size: Sequence[int], share: float = 0.8) -> int:
    """The RAM cache's size in bytes; a clear error if it would not fit in ``share`` of the
    available memory."""
    need, have = cache_bytes(n_images, image_size), available_memory()
    if need > share * have:
        raise NotEnoughMemoryError(
            f"data.cache=ram needs {need / GiB:.1f} GiB for {n_images} images at "
            f"{image_size[0]}x{image_size[1]}, but only {have / GiB:.1f} GiB of RAM is available."
            " Use data.cache=disk (memory-mapped), data.cache=none, or a smaller data.image_size.")
    return need


def ram_cache(paths: Sequence[str], pipeline: Pipeline, num_workers: int) -> torch.Tensor:
    need = check_ram(len(paths), pipeline.image_size)
    log.info("caching %d decoded images at %sx%s in RAM (%.0f MiB)", len(paths),
             *pipeline.image_size, need / 2**20)
    return decode_all(paths, pipeline, num_workers)


def _stats(paths: Sequence[str]) -> pd.DataFrame:
    st = [os.stat(p) for p in paths]
    return pd.DataFrame({"path": list(paths), "size": [s.st_size for s in st],
                         "mtime_ns": [s.st_mtime_ns for s in st]})


def disk_cache(paths: Sequence[str], pipeline: Pipeline, num_workers: int,
               cache_dir: str | os.PathLike, variant: str = "") -> torch.Tensor:
    """Row-aligned uint8 pixels of ``paths`` from (and kept up to date in) ``cache_dir``.

    The folder is keyed by the pipeline's pixel settings (size, face crop) and ``variant``
    (the data root), so different pipelines or data never share rows. Several processes may
    share ``cache_dir``: a file lock lets one decode while the others wait and then read its
    finished file.
    """
    h, w = pipeline.image_size
    tag = hashlib.sha1(f"{pipeline.pixels_key}|{variant}".encode()).hexdigest()[:12]
    folder = Path(cache_dir).expanduser() / f"{h}x{w}-{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    # An OS lock: the kernel releases it when its holder dies, so it never goes stale.
    with FileLock(folder / ".lock"):
        return _disk_cache_locked(folder, paths, pipeline, num_workers)


def _disk_cache_locked(folder: Path, paths: Sequence[str], pipeline: Pipeline,
                       num_workers: int) -> torch.Tensor:
    h, w = pipeline.image_size
    index_path = folder / "index.csv"
    want = _stats(paths)

    # index.csv names its pixel file and is replaced last, so a kill mid-update leaves the
    # previous (index, pixels) pair intact and the new pixel file an orphan, removed below.
    have = pd.read_csv(index_path) if index_path.exists() else None
    old = None
    if have is not None and (folder / have["file"].iat[0]).exists():
        old_path = folder / have["file"].iat[0]
        old = np.memmap(old_path, dtype=np.uint8, mode="r", shape=(len(have), 3, h, w))
        merged = want.merge(have[["path", "size", "mtime_ns", "row"]],
                            on=["path", "size", "mtime_ns"], how="left")
        if merged["row"].notna().all() and len(have) == len(want) and \
                (merged["row"].to_numpy() == np.arange(len(want))).all():
            log.info("disk cache hit: %d images from %s", len(want), folder)
            _remove_other_pixel_files(folder, keep=old_path.name)
            return torch.from_numpy(np.memmap(old_path, dtype=np.uint8, mode="c",
                                              shape=(len(want), 3, h, w)))
        reuse = merged["row"].notna().to_numpy()
    else:
        merged, reuse = want.assign(row=np.nan), np.zeros(len(want), dtype=bool)

    todo = np.flatnonzero(~reuse)
    log.info("disk cache %s: decoding %d of %d images", folder, len(todo), len(want))
    name = f"pixels-{os.getpid()}-{os.urandom(4).hex()}.u8"
    new_path = folder / name
    try:
        new = np.memmap(new_path, dtype=np.uint8, mode="w+", shape=(len(want), 3, h, w))
        if reuse.any():
            new[np.flatnonzero(reuse)] = old[merged.loc[reuse, "row"].astype(np.int64).to_numpy()]
        if len(todo):
            new[todo] = decode_all([paths[i] for i in todo], pipeline, num_workers).numpy()
        new.flush()
        del new
        atomic.write_csv(want.assign(row=np.arange(len(want)), file=name), index_path)
    except BaseException:
        new_path.unlink(missing_ok=True)
        raise
    del old
    _remove_other_pixel_files(folder, keep=name)
    return torch.from_numpy(np.memmap(new_path, dtype=np.uint8, mode="c",
                                      shape=(len(want), 3, h, w)))


def _remove_other_pixel_files(folder: Path, keep: str) -> None:
    """Pixel files the index does not name: earlier versions, or a killed builder's. A run
    still reading one keeps its memory map (POSIX unlinks the name, not the open file)."""
    for stale in folder.glob("pixels-*.u8"):
        if stale.name != keep:
            stale.unlink(missing_ok=True)
