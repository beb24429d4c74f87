"""Where a command may write its output file (a submission, a face-box CSV, an exported model):
the rules every entry point applies before any long work, so nothing is overwritten by
accident and no data or run file is ever replaced."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from maskcls import atomic
from maskcls.errors import ConfigError
from maskcls.run import folder as rf


def check_output(path: Path, key: str, suffix: str, inputs: Sequence[Path] = (),
                 data_roots: Sequence[Path] = (), overwrite: bool = False,
                 overwrite_flag: str = "overwrite=true") -> None:
    """``path`` (given as ``key=``) must be a ``suffix`` file in an existing, writable folder;
    never a folder, one of the command's ``inputs``, a file under a data root's ``train/`` or
    ``eval/``, one of a run folder's own files or a sweep's report; and not an existing file
    unless ``overwrite`` (``overwrite_flag`` is how the user says so)."""
    resolved = path.resolve()
    if path.is_dir():
        raise ConfigError(f"{key}={path} is a folder; give a file name such as "
                          f"{key}={path / ('output' + suffix)}")
    if path.suffix.lower() != suffix:
        raise ConfigError(f"{key}={path}: expected a {suffix} file (refusing to write over what "
                          "may be a checkpoint, a config or data)")
    protected = {p.resolve() for p in inputs}
    data_dirs = [(Path(r) / d).resolve() for r in data_roots for d in ("train", "eval")]
    if resolved in protected or any(resolved.is_relative_to(d) for d in data_dirs):
        raise ConfigError(f"{key}={path} is one of this command's inputs (a checkpoint, a run's "
                          "config, or a file of the data tree); choose another path")
    folder = path.parent
    if rf.is_run_folder(folder) and path.name in rf.RUN_FILES or \
            path.name in rf.SWEEP_FILES and rf.find_jobs(folder):
        raise ConfigError(f"{key}={path} is a file the run in {folder} wrote; choose another "
                          "name")
    if not folder.is_dir():
        raise ConfigError(f"{key}={path}: folder {folder} does not exist; create it or choose "
                          "another path")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{key}={path}: folder {folder} is not writable")
    if path.exists() and not overwrite:
        raise ConfigError(f"{key}={path} exists (an earlier output); pass {overwrite_flag} to "
                          f"replace it, or give another {key}")


@contextlib.contextmanager
def output_lock(path: Path, key: str) -> Iterator[None]:
    """Held while ``path`` is written: a second command writing the same file at the same
    time is refused instead of both printing ``wrote``."""
    lock = atomic.lock_now(f"{path}.lock", ConfigError(
        f"{key}={path} is being written by another running command; wait for it to end, or "
        "give another path"))
    try:
        yield
    finally:
        lock.release()
        with contextlib.suppress(OSError):
            Path(f"{path}.lock").unlink()
