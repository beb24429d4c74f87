"""One rule for the one-off batch jobs (generating a tree, finding face boxes): a process
pool when there are cores and enough items to pay for starting it, else a plain loop."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def steps(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """A tqdm bar with its ETA over a long one-off step (decoding a cache, finding face
    boxes, generating a tree); silent where the output is not a terminal."""
    yield from tqdm(items, desc=desc, total=total, disable=not sys.stderr.isatty(),
                    dynamic_ncols=True, leave=False)


def pool_map(fn: Callable[[Any], Any], items: Sequence[Any], workers: int | None = None,
             min_items: int = 8, chunksize: int = 8, desc: str | None = None,
             spawn: bool = False) -> list[Any]:
    """``[fn(x) for x in items]``, in ``workers`` processes (default: every core), in order;
    with ``desc``, a progress bar with its ETA on a terminal. ``spawn``: fresh processes
    instead of forks, for ``fn`` that runs torch (a fork of a process whose torch threads
    have run can hang in its first parallel op)."""
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(items) > min_items:
        context = multiprocessing.get_context("spawn") if spawn else None
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            results = pool.map(fn, items, chunksize=chunksize)
            return list(steps(results, desc, total=len(items)) if desc else results)
    return [fn(x) for x in (steps(items, desc, total=len(items)) if desc else items)]


def decode_workers(loader_workers: int, n_images: int) -> int:
    """Worker processes for a one-off decoding pass (cache, verify). The loader's count can
    be 0 (a cached CPU run), but a pass over every image has nothing to share the cores
    with; below ~1,000 images starting workers costs more than it saves."""
    if loader_workers or n_images < 1000:
        return loader_workers
    return max(1, min(8, os.cpu_count() or 1))
