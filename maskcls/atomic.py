"""All-or-nothing file writes: write a temporary file beside the target, then rename it.

A crash or kill mid-write leaves the previous file (or none), never half a file; a full disk
is one ``DiskFullError`` naming the file, with the temporary file removed. Files get
ordinary permissions (``0666`` less the umask, usually ``0644``), not ``mkstemp``'s ``0600``.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from maskcls.errors import DiskFullError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike, exclusive: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; what was written there replaces ``path`` when
    the block ends without an exception, and is removed otherwise.

    ``exclusive``: fail with ``FileExistsError`` instead of replacing an existing ``path``
    (the check and the rename are one atomic step).
    """
    path = Path(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        _raise_if_full(e, path)
        raise
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        if exclusive:
            os.link(tmp, path)  # raises FileExistsError if another writer got there first
            tmp.unlink()
        else:
            os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            _raise_if_full(e, path)
        raise


def _raise_if_full(error: OSError, path: Path) -> None:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        raise DiskFullError(f"no space left on device writing {path}; nothing was written "
                            "there (the previous file, if any, is intact). Free space, or "
                            "write elsewhere") from None


def write_text(path: str | os.PathLike, text: str, exclusive: bool = False) -> None:
    with atomic_path(path, exclusive) as tmp:
        tmp.write_text(text)


def write_csv(df: pd.DataFrame, path: str | os.PathLike, **to_csv_kwargs: object) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, **to_csv_kwargs)


def lock_now(lock_path: str | os.PathLike, busy: Exception) -> FileLock:
    """The file lock at ``lock_path``, held; ``busy`` is raised at once when another process
    holds it (a second writer is refused, never queued)."""
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise busy from None
    return lock
