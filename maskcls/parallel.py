"""One rule for the one-off batch jobs (generating a tree, finding face boxes): a process
pool when there are cores and enough items to pay for starting it, else a plain loop."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def pool_map(fn: Callable[[Any], Any], items: Sequence[Any], workers: int | None = None,
             min_items: int = 8, chunksize: int = 8) -> list[Any]:
    """``[fn(x) for x in items]``, in ``workers`` processes (default: every core), in order."""
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(items) > min_items:
        with ProcessPoolExecutor(workers) as pool:
            return list(pool.map(fn, items, chunksize=chunksize))
    return [fn(x) for x in items]
