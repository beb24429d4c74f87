"""Every file a user hands maskcls, damaged or of the wrong kind, ends in one line naming it,
before any long work; nothing is silently used as something it is not."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY_RUN, assert_one_line_error, cli, make_cfg

from maskcls.config import PredictSettings
from maskcls.data import catalog as cat
from maskcls.data.face_boxes import FaceBoxes, relative
from maskcls.errors import CheckpointError, ConfigError, DataLayoutError
from maskcls.export.reader import METADATA_KEY, load_exported
from maskcls.inference import predict
from maskcls.model.module import check_pretrained_file
from maskcls.report import job_table
from maskcls.training.recipe import check_config

# --------------------------------------------------------------------- calibration.json


@pytest.mark.parametrize("offsets", [
    {"mask": [float("nan"), 0, 0], "gender": [0, 0], "age": [0, 0, 0]},
    {"mask": [float("inf"), 0, 0], "gender": [0, 0], "age": [0, 0, 0]},
    {"mask": [1e308, 0, 0], "gender": [0, 0], "age": [0, 0, 0]},
    {"mask": [0, 0], "gender": [0, 0], "age": [0, 0, 0]},
    {"mask": ["a", 0, 0], "gender": [0, 0], "age": [0, 0, 0]},
], ids=["nan", "inf", "huge", "short", "text"])
def test_hand_edited_calibration_offsets_are_refused_before_predicting(fold_runs, tmp_path,
                                                                       offsets):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    os.link(fold_runs / "0" / "checkpoints" / "best.ckpt", run / "checkpoints" / "best.ckpt")
    (run / "config.yaml").write_bytes((fold_runs / "0" / "config.yaml").read_bytes())
    (run / "calibration.json").write_text(json.dumps({"offsets": offsets}))
    with pytest.raises(CheckpointError, match="calibration.json"):
        predict(PredictSettings(ckpt=str(run), calibrate=True, output=str(tmp_path / "s.csv")))
    assert not (tmp_path / "s.csv").exists()


# ------------------------------------------------------------------------ pseudo-labels


def _probs_csv(root: Path, path: Path, edit=None) -> Path:
    ids = pd.read_csv(root / "eval" / "info.csv")["ImageID"].tolist()
    p = np.full((len(ids), 18), 0.01)
    p[:, 0] = 1 - 0.17
    table = pd.DataFrame(p, columns=[f"prob_{c}" for c in range(18)])
    table.insert(0, "ImageID", ids)
    if edit is not None:
        table = edit(table)
    table.to_csv(path, index=False)
    return path


def _set(row, col, value):
    def edit(t):
        t = t.astype({col: object})
        t.loc[row, col] = value
        return t
    return edit


@pytest.mark.parametrize(("edit", "message"), [
    (_set(0, "prob_3", 5.0), "not 18 probabilities"),
    (_set(1, "prob_3", float("inf")), "not 18 probabilities"),
    (_set(2, "prob_0", -0.5), "not 18 probabilities"),
    (lambda t: t.assign(**{f"prob_{c}": 0.95 for c in range(18)}), "not 18 probabilities"),
    (_set(0, "prob_5", "abc"), "not 18 probabilities"),
    (_set(0, "prob_5", np.nan), "not 18 probabilities"),
    (_set(0, "ImageID", ""), "has no ImageID"),
    (lambda t: pd.concat([t, t.iloc[:1]]), "repeats an ImageID"),
    (_set(0, "ImageID", "f" * 40), "names an image not in"),
], ids=["five", "inf", "negative", "all-0.95", "text", "nan", "blank-id", "duplicate", "unknown"])
def test_pseudo_labels_that_are_not_probabilities_are_named(synth_root, tmp_path, edit,
                                                            message):
    csv = _probs_csv(synth_root, tmp_path / "p.csv", edit)
    with pytest.raises(DataLayoutError, match=message):
        check_config(make_cfg(synth_root, tmp_path / "run", f"data.pseudo_labels={csv}"))


def test_valid_pseudo_labels_pass(synth_root, tmp_path):
    csv = _probs_csv(synth_root, tmp_path / "p.csv")
    check_config(make_cfg(synth_root, tmp_path / "run", f"data.pseudo_labels={csv}"))


# ------------------------------------------------------------------- pretrained weights


def _weights_of(backbone: str) -> dict[str, torch.Tensor]:
    import timm

    with torch.device("meta"):
        names = list(timm.create_model(backbone).state_dict())
    return {k: torch.zeros(1) for k in names}


def test_weights_of_another_architecture_are_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "resnet34.safetensors"
    save_file(_weights_of("resnet34"), str(path))
    with pytest.raises(ConfigError, match=r"does not fit model.backbone=resnet18: .*weights of "
                                          r"the file are not in it"):
        check_pretrained_file(str(path), "resnet18")


@pytest.mark.parametrize("size", ["empty", "truncated"])
def test_an_unreadable_weights_file_is_one_line(tmp_path, size, synth_root):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file(_weights_of("resnet18"), str(path))
    data = path.read_bytes()
    path.write_bytes(b"" if size == "empty" else data[: len(data) // 2])
    res = cli(f"data.root={synth_root}", *TINY_RUN, f"model.pretrained_file={path}",
              f"hydra.run.dir={tmp_path / 'r'}")
    assert_one_line_error(res, "cannot be read as weights", str(path))


# -------------------------------------------------------------------- exported models


class _TenClasses(torch.nn.Module):
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.full((pixels.shape[0], 10), 0.1) + pixels.float().mean() * 0


def _torchscript(path: Path, meta: str, module: torch.nn.Module | None = None) -> Path:
    traced = torch.jit.trace(module or _TenClasses(), torch.zeros(1, 3, 32, 24, dtype=torch.uint8))
    torch.jit.save(traced, str(path), _extra_files={METADATA_KEY: meta})
    return path


GOOD_META = {"format_version": 1, "pipeline": {"image_size": [32, 24], "mean": [0.5] * 3,
                                               "std": [0.2] * 3}}


@pytest.mark.parametrize(("meta", "message"), [
    (json.dumps(GOOD_META), "not 18 class probabilities"),
    ("{not json", "is not JSON"),
    (json.dumps({"format_version": 1, "pipeline": {"mean": [0.5] * 3, "std": [0.2] * 3}}),
     "does not describe the input pipeline"),
    (json.dumps([1, 2]), "unknown version"),
], ids=["ten-classes", "non-json", "no-image-size", "a-list"])
def test_an_exported_model_that_is_not_a_maskcls_model_is_refused(tmp_path, meta, message):
    path = _torchscript(tmp_path / "m.pt", meta)
    with pytest.raises(CheckpointError, match=message):
        load_exported(path)


def test_predict_refuses_a_ten_class_model_before_writing(synth_root, tmp_path):
    path = _torchscript(tmp_path / "m.pt", json.dumps(GOOD_META))
    res = cli(f"model_file={path}", f"data.root={synth_root}", script="predict.py")
    assert_one_line_error(res, "not 18 class probabilities")
    assert not (tmp_path / "submission.csv").exists()


# ----------------------------------------------------------------------- face boxes


def _boxes(root: Path, path: Path, edit) -> Path:
    rows = [(relative(p), 1, 2, 30, 40)
            for p in cat.scan_train(root)["path"]]
    table = edit(pd.DataFrame(rows, columns=["path", "x0", "y0", "x1", "y1"]))
    table.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.assign(x1=[float("inf")] + list(t["x1"][1:])), "finite pixels"),
    (lambda t: t.assign(path="/abs/" + t["path"]), "not relative to the data root"),
    (lambda t: t.assign(path="../" + t["path"]), "not relative to the data root"),
    (lambda t: pd.concat([t, t.iloc[:1].assign(x1=20)]), "another box for an image"),
], ids=["inf", "absolute", "dotdot", "conflicting-duplicate"])
def test_bad_face_box_rows_are_named(synth_root, tmp_path, edit, message):
    csv = _boxes(synth_root, tmp_path / "b.csv", edit)
    with pytest.raises(DataLayoutError, match=message):
        FaceBoxes(csv)


def test_the_same_box_listed_twice_is_accepted(synth_root, tmp_path):
    csv = _boxes(synth_root, tmp_path / "b.csv", lambda t: pd.concat([t, t.iloc[:1]]))
    assert len(FaceBoxes(csv).boxes) == len(cat.scan_train(synth_root))


# --------------------------------------------------------------------- the data tree


def test_a_person_folder_that_is_a_symlink_loop_is_named(synth_copy):
    images = synth_copy / "train" / "images"
    (images / "009999_male_Asian_20").symlink_to(images / "loop")
    (images / "loop").symlink_to(images / "009999_male_Asian_20")
    with pytest.raises(DataLayoutError, match="009999_male_Asian_20|loop"):
        cat.scan_train(synth_copy)


@pytest.mark.parametrize(("overrides", "message"), [
    (["data.age_bounds=[abc,60]"], "data.age_bounds"),
    (["data.age_bounds=[60,30]"], "data.age_bounds"),
    (["trainer.max_time=abc"], "trainer.max_time"),
    (["data.batch_size=1"], "data.batch_size=1"),
    # the default synthetic location (the only tree whose generator settings apply)
    (["paths.synthetic_dir={root}", "data.root={root}", "data.synthetic={{framing:5}}"],
     "data.synthetic.framing"),
], ids=["age-text", "age-order", "max-time", "batch-one", "framing"])
def test_bad_values_are_named_before_data(synth_root, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        check_config(make_cfg(synth_root, tmp_path / "run",
                              *(o.format(root=synth_root) for o in overrides)))


def test_a_cache_dir_that_is_a_file_is_named(synth_root, tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        check_config(make_cfg(synth_root, tmp_path / "run", "data.cache=disk",
                              f"data.cache_dir={tmp_path / 'f'}"))


def test_a_batch_that_leaves_one_image_trains(synth_root, tmp_path):
    """The train loader drops a ragged last batch: one image would break BatchNorm."""
    from maskcls.training.recipe import train

    train(make_cfg(synth_root, tmp_path / "run", "data.batch_size=3", "data.val_ratio=0.5"))
    assert (tmp_path / "run" / "metrics.json").exists()


# ------------------------------------------------------------------ answers and reports


@pytest.mark.parametrize("content", ["ImageID,answer\nx,1\n", "ImageID,ans\n{id},abc\n",
                                     "ImageID,ans\n{id},25\n"],
                         ids=["no-ans", "text", "class-25"])
def test_a_malformed_answers_file_keeps_the_submission(fold_runs, synth_copy, tmp_path, content):
    first = pd.read_csv(synth_copy / "eval" / "info.csv")["ImageID"].iloc[0]
    (synth_copy / "eval" / "answers.csv").write_text(content.format(id=first))
    out = tmp_path / "s.csv"
    res = cli(f"ckpt={fold_runs / '0'}", f"data.root={synth_copy}", f"output={out}",
              script="predict.py")
    assert res.returncode == 0, res.stderr[-3000:]
    assert out.exists()
    notes = [line for line in res.stdout.splitlines() if line.startswith("note: not scored")]
    assert len(notes) == 1 and "answers.csv" in notes[0], res.stdout


@pytest.mark.parametrize("content", ["", "{", "{}", '{"val": {}}'])
def test_the_report_lists_a_job_with_a_damaged_metrics_file(fold_runs, tmp_path, content):
    import shutil

    sweep = tmp_path / "sweep"
    for job in ("0", "1"):
        shutil.copytree(fold_runs / job, sweep / job,
                        ignore=shutil.ignore_patterns("*.ckpt"))
    (sweep / "1" / "metrics.json").write_text(content)
    table, _ = job_table(sweep)
    assert table.set_index("job").loc["1", "status"] == "damaged"
    assert table.set_index("job").loc["0", "status"] == "done"


# --------------------------------------------------------------- face boxes and sweeps


def _all_boxes(root: Path, path: Path) -> Path:
    paths = [*cat.scan_train(root)["path"], *cat.scan_eval(root)["path"]]
    pd.DataFrame([(relative(p), 2, 3, 40, 56) for p in paths],
                 columns=["path", "x0", "y0", "x1", "y1"]).to_csv(path, index=False)
    return path


def test_a_box_file_edited_after_training_is_named(synth_root, tmp_path):
    from maskcls.training.recipe import train

    boxes = _all_boxes(synth_root, tmp_path / "boxes.csv")
    train(make_cfg(synth_root, tmp_path / "run", f"data.face_boxes={boxes}"))
    # unchanged: fine
    predict(PredictSettings(ckpt=str(tmp_path / "run"), output=str(tmp_path / "a.csv")))
    table = pd.read_csv(boxes)
    table.loc[0, "x1"] = 30
    table.to_csv(boxes, index=False)
    with pytest.raises(CheckpointError, match="has changed since the model was trained"):
        predict(PredictSettings(ckpt=str(tmp_path / "run"), output=str(tmp_path / "b.csv")))
    # given explicitly, the file is used as it is now
    predict(PredictSettings(ckpt=str(tmp_path / "run"),
                            output=str(tmp_path / "c.csv"),
                            face_boxes=str(boxes)))
    assert (tmp_path / "c.csv").exists() and not (tmp_path / "b.csv").exists()


def test_face_boxes_for_a_model_without_face_crops_are_refused(fold_runs, synth_root, tmp_path):
    boxes = _all_boxes(synth_root, tmp_path / "boxes.csv")
    with pytest.raises(ConfigError, match="trained without face crops"):
        predict(PredictSettings(ckpt=str(fold_runs / "0"),
                                output=str(tmp_path / "s.csv"),
                                face_boxes=str(boxes)))


def test_an_ensemble_of_a_sweep_names_the_jobs_left_out(fold_runs, tmp_path):
    import shutil

    sweep = tmp_path / "sweep"
    for job in ("0", "1"):
        shutil.copytree(fold_runs / job, sweep / job)
    (sweep / "2" / ".hydra").mkdir(parents=True)
    (sweep / "2" / "failure.json").write_text('{"type": "X", "message": "boom"}')
    res = predict(PredictSettings(ckpt=str(sweep), output=str(tmp_path / "s.csv")))
    assert res["members"] == 2
    assert any("left out: 2 (failed)" in n for n in res["notes"]), res["notes"]
