"""Every checkpoint the project reads goes through ``load_checkpoint``.

A ``.ckpt`` is a pickle, and unpickling can run code. ``torch.load(weights_only=True)`` only
rebuilds tensors and plain containers, so a checkpoint from a stranger cannot run anything.
Remote paths (``http://``, ``s3://`` ...) are refused: Lightning would fetch them with full
unpickling. ``SafeCheckpointIO`` routes Lightning's own loads (``ckpt_path=``, the final
validation of ``best.ckpt``) through the same function, and saves checkpoints atomically
beside their target.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from pytorch_lightning.plugins.io import TorchCheckpointIO

from maskcls import atomic
from maskcls.errors import CheckpointError, ConfigError


def _local_path(path: str | os.PathLike, what: str) -> Path:
    text = str(path)
    if "://" in text and not text.startswith("file://"):
        raise CheckpointError(f"{what}={text}: remote checkpoints are not loaded (unpickling a "
                              "downloaded file can run code). Download it, check where it comes "
                              "from, and give the local path.")
    return Path(text.removeprefix("file://")).expanduser()


def load_checkpoint(path: str | os.PathLike, what: str = "ckpt") -> dict[str, Any]:
    """The checkpoint at ``path``, read without executing code; ``what`` names the option
    that gave the path, for the error message."""
    import torch

    local = _local_path(path, what)
    if not local.is_file():
        raise CheckpointError(f"{what}={path}: no such checkpoint file")
    try:
        ckpt = torch.load(local, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means the file is not usable
        first = (str(e).splitlines() or [""])[0][:300]
        raise CheckpointError(
            f"{local}: not a loadable checkpoint ({type(e).__name__}: {first}). It may be "
            "truncated (a full disk, a copy cut short), or hold pickled objects, which are refused "
            "(checkpoints are read with weights_only=True).") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{local}: not a Lightning checkpoint (no state_dict)")
    return ckpt


def check_resumable(path: str | os.PathLike, max_epochs: int,
                    what: str = "ckpt_path") -> dict[str, Any]:
    """A checkpoint training can continue from: it holds the optimiser state, not weights only
    (``best.ckpt`` is weights only; ``last.ckpt`` is complete), and has trained fewer than
    ``max_epochs`` epochs (else nothing would train)."""
    ckpt = load_checkpoint(path, what)
    if "optimizer_states" not in ckpt or "loops" not in ckpt:
        raise CheckpointError(f"{what}={path}: holds weights only (no optimiser or loop state), so "
                              "training cannot continue from it; use the run's "
                              "checkpoints/last.ckpt")
    done = int(ckpt["epoch"]) + 1
    if max_epochs <= done:
        raise ConfigError(f"trainer.max_epochs={max_epochs}, but {path} has already trained "
                          f"{done} epoch(s); give trainer.max_epochs > {done} to train more")
    return ckpt


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, loading only through ``load_checkpoint`` and saving through
    a temporary file in the checkpoint's own folder (an ``os.replace`` there is atomic; a
    temporary file elsewhere, Lightning's default, is moved across file systems by copying).

    ``run_dir``: the folder a resumed run continues in. The checkpoint callbacks' restored
    paths are confined to it (``_confine``)."""

    def __init__(self, run_dir: Path | None = None) -> None:
        super().__init__()
        self.run_dir = run_dir

    def load_checkpoint(self, path: str | os.PathLike, map_location: Any = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        ckpt = load_checkpoint(path, "ckpt_path")
        for state in (ckpt.get("callbacks") or {}).values():
            _confine(state, self.run_dir)
        return ckpt

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any = None) -> None:
        import torch

        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())


# ModelCheckpoint's state: the paths Lightning restores and later deletes as "old" checkpoints.
PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")


def _confine(state: Any, run_dir: Path | None) -> None:
    """A ``ModelCheckpoint`` state restored from a checkpoint file, made harmless.

    Resuming in ``run_dir``: paths written in the run's original folder are moved here (a run
    folder may have been copied or moved), and any path that does not then lie inside
    ``run_dir/checkpoints`` (``..`` resolved) is dropped, since Lightning deletes the
    checkpoints it believes it wrote. ``run_dir=None`` (``ckpt_path=`` of another run, or
    evaluating a best checkpoint): no path of that checkpoint is this run's, so all are dropped."""
    if not isinstance(state, dict) or not isinstance(state.get("dirpath"), str):
        return
    ours = (run_dir / "checkpoints").resolve() if run_dir is not None else None
    old = Path(state["dirpath"]).parent

    def keep(value: Any) -> str | None:
        if ours is None or not isinstance(value, str) or not value:
            return None
        path = Path(value)
        if path.is_relative_to(old):  # written in the original folder: move it here
            path = run_dir / path.relative_to(old)
        return str(path) if ours in path.resolve().parents else None

    if ours is not None:
        state["dirpath"] = str(run_dir / "checkpoints")  # as the callback spells it
    for key in PATH_KEYS:
        if key in state:
            state[key] = keep(state[key]) or ""
    if isinstance(state.get("best_k_models"), dict):
        state["best_k_models"] = {kept: v for k, v in state["best_k_models"].items()
                                  if (kept := keep(k)) is not None}
