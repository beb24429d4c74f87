"""Reading models written by ``maskcls.export``: their metadata and a function to run them.

ONNX files run in onnxruntime (a graph of operators: loading runs no code). TorchScript files
run in ``torch.jit``, whose archives hold TorchScript programs only, not pickled Python objects.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskcls.errors import CheckpointError, ConfigError

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
METADATA_KEY = "maskcls"


@dataclass
class ExportedModel:
    """``run(pixels)``: uint8 ``(N, 3, H, W)`` -> float32 ``(N, 18)`` probabilities."""

    path: Path
    metadata: dict[str, Any]
    run: Callable[[np.ndarray], np.ndarray]


def _metadata(text: str | None, path: Path) -> dict[str, Any]:
    if not text:
        raise CheckpointError(f"model_file={path}: no '{METADATA_KEY}' metadata in the file; "
                              "it was not written by python -m maskcls.export")
    meta = json.loads(text)
    if meta.get("format_version") != 1 or "pipeline" not in meta:
        raise CheckpointError(f"model_file={path}: its metadata is of an unknown version "
                              f"({meta.get('format_version')!r}); export it again")
    return meta


def _load_onnx(path: Path) -> ExportedModel:
    if find_spec("onnxruntime") is None:
        raise ConfigError(f"model_file={path} needs onnxruntime: pip install -e '.[export]'")
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=ort.get_available_providers())
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types; say which file
        raise CheckpointError(f"model_file={path} is not a readable ONNX model "
                              f"({str(e).splitlines()[0][:200]})") from None
    meta = _metadata(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), path)
    name = session.get_inputs()[0].name

    def run(pixels: np.ndarray) -> np.ndarray:
        return session.run(None, {name: np.ascontiguousarray(pixels)})[0]

    return ExportedModel(path, meta, run)


def _load_torchscript(path: Path) -> ExportedModel:
    extra = {METADATA_KEY: ""}
    try:
        with warnings.catch_warnings():  # torch marks TorchScript deprecated; it still loads
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as e:  # noqa: BLE001 - any failure means it is not a TorchScript archive
        raise CheckpointError(f"model_file={path} is not a readable TorchScript model "
                              f"({str(e).splitlines()[0][:200]})") from None
    meta = _metadata(extra[METADATA_KEY], path)
    module.eval()

    def run(pixels: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(pixels))).numpy()

    return ExportedModel(path, meta, run)


LOADERS: dict[str, Callable[[Path], ExportedModel]] = {
    "onnx": _load_onnx, "torchscript": _load_torchscript}


def load_exported(path: str | os.PathLike) -> ExportedModel:
    """A model written by ``maskcls.export``, its format told by the file's suffix."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"model_file={path}: no such file; give a .onnx or .pt file "
                              "written by python -m maskcls.export")
    for fmt, suffix in FORMATS.items():
        if p.suffix.lower() == suffix:
            return LOADERS[fmt](p)
    raise CheckpointError(f"model_file={path}: expected a .onnx or .pt file written by "
                          "python -m maskcls.export")
