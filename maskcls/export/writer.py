"""A trained checkpoint -> a self-contained ONNX or TorchScript model.

    python -m maskcls.export ckpt=outputs/2026-12-04/09-15-02.418331-resnet18 format=onnx
    python -m maskcls.export ckpt=path/to/best.ckpt format=torchscript output=model.pt

The exported model takes what the data pipeline produces, uint8 RGB pixels ``(N, 3, H, W)``
already cropped and resized to the run's image size (any N), and returns the 18 class
probabilities ``(N, 18)``. The normalisation is inside the graph. Everything else a user needs
to feed it (image size, centre crop or face-box crop, class names, the run's calibration
offsets) is stored in the file itself as JSON, under the key ``maskcls``: ONNX metadata
(``onnxruntime``'s ``get_modelmeta().custom_metadata_map``), a TorchScript extra file.
``predict.py model_file=<file>`` reads it back and scores the model like any checkpoint.

Every export is checked before it is kept: the file is loaded back with its own runtime and must
give the checkpoint's probabilities on a batch of another size (so the batch axis is dynamic).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pytorch_lightning.core.module import _jit_is_scripting
from torch import nn

from maskcls import atomic, labels
from maskcls.config import ExportSettings
from maskcls.data.batch_transforms import BatchTransform
from maskcls.data.pipeline import Pipeline
from maskcls.errors import CheckpointError, ConfigError
from maskcls.export.reader import FORMATS, LOADERS, METADATA_KEY
from maskcls.inference import calibration
from maskcls.model.module import DEFAULT_HEAD, MaskClassifier
from maskcls.run import folder as rf
from maskcls.run.checkpoints import load_checkpoint
from maskcls.run.logs import quiet_libraries
from maskcls.run.output_paths import check_output
from maskcls.run.trained import (
    eval_pipeline,
    find_checkpoints,
    load_model,
    recorded_eval_set,
    trained_data_root,
)

# Largest difference allowed between the exported model's probabilities and the checkpoint's
# (float32 kernels of another runtime reorder sums; differences seen are ~1e-7).
TOLERANCE = 1e-4


class Deployable(nn.Module):
    """uint8 pixels -> the pipeline's normalisation -> ``MaskClassifier.probabilities``: the
    module's own forward, per-task heads and channels-last included."""

    def __init__(self, model: MaskClassifier, normaliser: BatchTransform) -> None:
        super().__init__()
        self.model = model
        # the pipeline's own (pixel / 255 - mean) / std, as one multiply-add
        self.register_buffer("scale", normaliser.scale.clone())
        self.register_buffer("shift", normaliser.shift.clone())

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.probabilities(pixels.float() * self.scale + self.shift)


def metadata(ckpt: dict[str, Any], path: Path, run_dir: Path | None,
             pipeline: Pipeline) -> dict[str, Any]:
    """What a user of the exported file needs to feed it and read its output."""
    hp = ckpt.get("hyper_parameters") or {}
    offsets = None
    if run_dir is not None and (run_dir / rf.CALIBRATION).exists():
        offsets = calibration.load(run_dir / rf.CALIBRATION)
    return {
        "format_version": 1,
        "backbone": hp.get("backbone"),
        "head": hp.get("head", DEFAULT_HEAD),
        "input": {"name": "pixels", "dtype": "uint8", "layout": "NCHW", "channels": "RGB",
                  "image_size": list(pipeline.image_size),
                  "preprocessing": "crop (centre_crop or face box grown by face_margin), then "
                                   "resize to image_size with antialiasing; no normalisation"},
        "output": {"name": "probs", "meaning": "softmax probabilities of the 18 classes"},
        "pipeline": pipeline.to_state(),
        "classes": list(labels.CLASS_NAMES),
        "calibration": offsets,
        "source_checkpoint": str(path),
        "data_root": trained_data_root(run_dir),
        "eval_data": recorded_eval_set(ckpt),
    }


def _example(image_size: Sequence[int], n: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(n)
    return torch.randint(0, 256, (n, 3, *image_size), dtype=torch.uint8, generator=generator)


def _write_onnx(module: Deployable, example: torch.Tensor, meta: dict[str, Any],
                path: Path) -> None:
    import onnx

    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(module, (example,), dynamo=True, input_names=["pixels"],
                                output_names=["probs"], dynamic_shapes={"pixels": {0: batch}},
                                external_data=False, verbose=False)
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.save_model(proto, str(path))


def _write_torchscript(module: Deployable, example: torch.Tensor, meta: dict[str, Any],
                       path: Path) -> None:
    # tracing reads every attribute of the LightningModule inside, its `trainer` too: Lightning's
    # own to_torchscript switch lets that through without a Trainer
    with warnings.catch_warnings(), _jit_is_scripting():
        warnings.simplefilter("ignore", FutureWarning)  # torch marks TorchScript deprecated
        scripted = torch.jit.trace(module, example, check_trace=False)
        torch.jit.save(scripted, str(path), _extra_files={METADATA_KEY: json.dumps(meta)})


def _check_package(fmt: str) -> None:
    if fmt != "onnx":
        return
    missing = [p for p in ("onnx", "onnxscript", "onnxruntime") if find_spec(p) is None]
    if missing:
        raise ConfigError(f"format=onnx needs {', '.join(missing)}: pip install -e '.[export]'")


def default_output(folder: Path, fmt: str) -> Path:
    return folder / f"model{FORMATS[fmt]}"


def export(settings: ExportSettings) -> dict[str, Any]:
    """Export one checkpoint (``settings.ckpt``: a ``.ckpt`` or a run folder); returns the path,
    its size and the largest probability difference from the checkpoint on a check batch. An
    existing output is replaced only with ``overwrite``."""
    quiet_libraries()
    ckpt, fmt, output = str(settings.ckpt), settings.format, settings.output
    face_boxes, overwrite = settings.face_boxes, settings.overwrite
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    _check_package(fmt)
    members, folder = find_checkpoints(ckpt)
    if len(members) != 1:
        raise ConfigError(f"ckpt={ckpt} holds {len(members)} checkpoints (a sweep); export one "
                          "run at a time, e.g. ckpt=" + str(members[0].run_dir or members[0].ckpt))
    member = members[0]
    out = Path(output).expanduser() if output else default_output(folder, fmt)
    roots = [Path(r) for r in (trained_data_root(member.run_dir),) if r]
    check_output(out, "output", FORMATS[fmt], [member.ckpt], roots, overwrite)
    state = load_checkpoint(member.ckpt)
    model = load_model(state, member.ckpt)
    pipeline = eval_pipeline(state, member.ckpt, face_boxes)
    meta = metadata(state, member.ckpt, member.run_dir, pipeline)
    module = Deployable(model, pipeline.normaliser()).eval()
    size = pipeline.image_size
    # written beside the target and moved there only once loaded back and checked
    with atomic.atomic_path(out) as tmp, torch.no_grad():
        (_write_onnx if fmt == "onnx" else _write_torchscript)(module, _example(size, 2), meta,
                                                              tmp)
        check = _example(size, 3)  # another batch size than the export's
        got = LOADERS[fmt](tmp).run(check.numpy())
        diff = float(np.abs(got - module(check).numpy()).max())
        if diff > TOLERANCE:
            raise CheckpointError(f"the exported {fmt} model differs from {member.ckpt} by "
                                  f"{diff:.2e} in probability (> {TOLERANCE}); not written")
    return {"path": out, "bytes": out.stat().st_size, "max_diff": diff, "checkpoint": member.ckpt,
            "image_size": list(size)}
