"""Exported models (ONNX, TorchScript) give the checkpoint's probabilities, carry what is needed
to feed them, and are scored by predict.py like any checkpoint."""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import cli, make_cfg

from maskcls import labels
from maskcls.config import ExportSettings, PredictData, PredictSettings
from maskcls.errors import CheckpointError, ConfigError
from maskcls.export.reader import METADATA_KEY, load_exported
from maskcls.export.writer import TOLERANCE, export
from maskcls.inference import Source, calibration, predict, predict_probs
from maskcls.run import folder as rf

ROOT = Path(__file__).resolve().parents[1]
# Exported and checkpoint probabilities agree to this (float32 kernels of another runtime
# reorder sums; the differences seen are ~1e-7).
ATOL = 1e-5


@pytest.fixture(scope="module")
def single_head_run(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from maskcls.training.recipe import train

    out = tmp_path_factory.mktemp("single") / "run"
    train(make_cfg(synth_root, out, "model.head=single"))
    return out


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("head", ["multi", "single"])
def test_exported_model_gives_the_checkpoints_probabilities(fmt, head, fold_runs, single_head_run,
                                                            synth_root, tmp_path):
    run = fold_runs / "0" if head == "multi" else single_head_run
    suffix = ".onnx" if fmt == "onnx" else ".pt"
    res = export(ExportSettings(ckpt=str(run),
                                format=fmt,
                                output=str(tmp_path / f"model{suffix}")))
    assert res["max_diff"] <= TOLERANCE
    model = load_exported(res["path"])
    assert model.metadata["head"] == head
    checkpoint = Source.resolve(str(run), None, False).scorers(None, "cpu")
    exported = Source.resolve(None, str(res["path"]), False).scorers(None, "cpu")
    for tta in (False, True):
        # a batch size the export never saw: the batch axis is dynamic
        _, expected = predict_probs(checkpoint, synth_root, tta=tta, batch_size=7,
                                    num_workers=0)
        _, [got] = predict_probs(exported, synth_root, tta=tta, batch_size=7, num_workers=0)
        assert got.shape == expected[0].shape == (len(got), labels.NUM_CLASSES)
        np.testing.assert_allclose(got, expected[0], atol=ATOL)
        np.testing.assert_allclose(got.sum(1), 1, atol=1e-5)


def test_onnx_file_carries_its_input_contract(fold_runs, tmp_path):
    run = fold_runs / "0"
    path = export(ExportSettings(ckpt=str(run), output=str(tmp_path / "m.onnx")))["path"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (outp,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, outp.name) == ("pixels", "tensor(uint8)", "probs")
    assert isinstance(inp.shape[0], str)  # symbolic batch axis
    meta = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert inp.shape[1:] == [3, *meta["input"]["image_size"]] == [3, 32, 24]
    assert meta["classes"] == list(labels.CLASS_NAMES)
    assert meta["pipeline"]["mean"] and meta["pipeline"]["std"]
    assert meta["calibration"] == calibration.load(run / rf.CALIBRATION)


def test_predict_scores_an_exported_model_like_its_checkpoint(fold_runs, synth_root, tmp_path):
    """The commands a user runs: export, then predict.py model_file= against answers.csv."""
    run = fold_runs / "0"
    model = tmp_path / "exported.onnx"
    done = cli(f"ckpt={run}", "format=onnx", f"output={model}", module="maskcls.export")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"wrote {model}" in done.stdout and "max difference from the checkpoint" in done.stdout
    out = cli(f"model_file={model}", f"output={tmp_path / 'sub.csv'}", "num_workers=0",
              "calibrate=true", script="predict.py")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "exported model" in out.stdout and "score against eval/answers.csv" in out.stdout
    from_ckpt = predict(PredictSettings(ckpt=str(run),
                                        output=str(tmp_path / "ckpt.csv"),
                                        num_workers=0,
                                        accelerator="cpu",
                                        calibrate=True))
    assert f"over {from_ckpt['score']['classes_scored']} classes" in out.stdout
    printed = float(out.stdout.split("macro-F1 ")[1].split()[0])
    assert printed == pytest.approx(from_ckpt["score"]["f1"], abs=1e-4)
    sub = (tmp_path / "sub.csv").read_text()
    assert sub == (tmp_path / "ckpt.csv").read_text()


def test_export_refuses_what_it_cannot_write(fold_runs, tmp_path):
    with pytest.raises(ConfigError, match="2 checkpoints"):
        export(ExportSettings(ckpt=str(fold_runs), format="onnx", output=str(tmp_path / "m.onnx")))
    with pytest.raises(ConfigError, match=r"\.onnx file"):
        export(ExportSettings(ckpt=str(fold_runs / "0"),
                              format="onnx",
                              output=str(tmp_path / "m.pt")))
    with pytest.raises(ConfigError, match="format must be one of"):
        export(ExportSettings(ckpt=str(fold_runs / "0"),
                              format="tflite",
                              output=str(tmp_path / "m.onnx")))
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_predict_refuses_a_model_file_not_from_maskcls(tmp_path, synth_root):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save_model(helper.make_model(graph), str(tmp_path / "other.onnx"))
    with pytest.raises(CheckpointError, match="not written by python -m maskcls.export"):
        predict(PredictSettings(model_file=str(tmp_path / "other.onnx"),
                                data=PredictData(str(synth_root))))
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="not a readable TorchScript model"):
        predict(PredictSettings(model_file=str(tmp_path / "junk.pt"),
                                data=PredictData(str(synth_root))))
    with pytest.raises(ConfigError, match="either ckpt="):
        predict(PredictSettings(data=PredictData(str(synth_root))))
