"""The project's own exceptions: raised where maskcls checks what a user gave it.

The entry points print a ``MaskclsError`` as one ``error: ...`` line (its message names the
file, key or value and what to do) and let every other exception, a bug, show its traceback.
Each type also derives from the built-in it refines, so ``except ValueError`` still works.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class MaskclsError(Exception):
    """Bad input from the user: a config value, a data file, a checkpoint, a folder."""

    exit_code = 1


class ConfigError(MaskclsError, ValueError):
    """A configuration value of the wrong type or range, or settings that do not fit together."""


class DataLayoutError(MaskclsError, ValueError):
    """The data tree does not have the competition layout; the message says where and why."""


class ImageReadError(MaskclsError, RuntimeError):
    """An image file cannot be used; the message names it.

    Raised in a DataLoader worker, PyTorch re-raises it in the main process with the worker's
    traceback folded into the message; only the original message is kept, so the user sees
    one line naming the file.
    """

    def __init__(self, message: str = "") -> None:
        marker = f"{type(self).__name__}: "
        if "Original Traceback" in message and marker in message:
            message = message.rsplit(marker, 1)[1].strip()
        super().__init__(message)


class CheckpointError(MaskclsError, ValueError):
    """A checkpoint that cannot be used; the message says which and why."""


class RunFolderError(MaskclsError):
    """A run folder that is not this run's to write, or not a run folder to resume."""


class NotEnoughMemoryError(MaskclsError, MemoryError):
    """A requested in-memory cache would not fit in the available RAM."""


class DiskFullError(MaskclsError, OSError):
    """A file could not be written for lack of space; nothing half-written was left."""


class RunInterrupted(MaskclsError):
    """SIGTERM (a scheduler's pre-emption) stopped a run; the message says how to resume."""

    exit_code = 143  # 128 + SIGTERM, what a shell reports for a process the signal ended


class UserInterrupted(RunInterrupted):
    """Ctrl-C stopped a run; the message says how to resume."""

    exit_code = 130  # 128 + SIGINT


@contextmanager
def one_line_errors(*also: type[BaseException]) -> Iterator[None]:
    """Every command's entry point: a ``MaskclsError`` (or one of the types in ``also``) ends
    the command as one ``error: ...`` line on stderr with the error's exit code; anything
    else, a bug, keeps its traceback. ``SystemExit`` passes through Hydra's job runner, so a
    SIGTERM stops a whole sweep too."""
    try:
        yield
    except (MaskclsError, *also) as e:
        code = getattr(e, "exit_code", 1)
        if code == 1:  # the message travels with the exit: Python prints it to stderr
            raise SystemExit(f"error: {e}") from None
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(code) from None
