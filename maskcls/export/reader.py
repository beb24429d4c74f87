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

from maskcls import labels
from maskcls.errors import CheckpointError, ConfigError
from maskcls.run.received import check_targets

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
    try:
        meta = json.loads(text)
    except ValueError as e:
        raise CheckpointError(f"model_file={path}: its '{METADATA_KEY}' metadata is not JSON "
                              f"({e}); export the model again") from None
    if not isinstance(meta, dict) or meta.get("format_version") != 1:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise CheckpointError(f"model_file={path}: its metadata is of an unknown version "
                              f"({version!r}); export it again")
    check_targets(meta, f"model_file={path}")
    pipeline = meta.get("pipeline")
    try:
        from maskcls.data.pipeline import Pipeline

        if not isinstance(pipeline, dict):
            raise TypeError("no pipeline")
        Pipeline(tuple(pipeline["image_size"]), pipeline.get("center_crop"),
                 tuple(pipeline["mean"]), tuple(pipeline["std"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"model_file={path}: its metadata does not describe the input "
                              f"pipeline ({type(e).__name__}: {e}); export the model "
                              "again") from None
    return meta


def _check_runs(model: ExportedModel) -> ExportedModel:
    """One blank image through the model: it must give 18 probabilities per image."""
    h, w = model.metadata["pipeline"]["image_size"]
    try:
        out = np.asarray(model.run(np.zeros((1, 3, h, w), dtype=np.uint8)))
    except Exception as e:  # noqa: BLE001 - a runtime's own error: the file does not fit
        raise CheckpointError(f"model_file={model.path} does not take the (N, 3, {h}, {w}) uint8 "
                              f"input its metadata declares ({str(e).splitlines()[0][:200]})"
                              ) from None
    if out.shape != (1, labels.NUM_CLASSES) or not np.isfinite(out).all() \
            or abs(float(out.sum()) - 1) > 1e-3:
        raise CheckpointError(f"model_file={model.path} gives output of shape "
                              f"{tuple(out.shape)}, not {labels.NUM_CLASSES} class probabilities "
                              "per image; it is not a maskcls model of this competition")
    return model


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
            return _check_runs(LOADERS[fmt](p))
    raise CheckpointError(f"model_file={path}: expected a .onnx or .pt file written by "
                          "python -m maskcls.export")
