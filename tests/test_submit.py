"""``python -m maskcls.submit``: the competition day in one resumable command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY_RUN, cli

from maskcls.errors import RunFolderError
from maskcls.inference import calibration
from maskcls.inference.submission import Source
from maskcls.label_issues import PROB_COLUMNS
from maskcls.run import folder as rf
from maskcls.run.same_config import differences
from maskcls.submit.steps import (
    AUTO,
    RECORD,
    Plan,
    claim,
    crop_setting,
    fold_command,
    fold_overrides,
    predict_settings,
)

SUBMIT = "maskcls.submit"


def test_submit_trains_the_folds_fits_on_out_of_fold_and_writes_the_submission(
        synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub"
    args = ["--folds", "2", f"data.root={synth_root}", *TINY_RUN, "--out", str(out)]
    r = cli(*args, module=SUBMIT)
    assert r.returncode == 0, r.stderr[-3000:]
    for k in (0, 1):
        assert (out / str(k) / rf.METRICS_JSON).is_file()
    train_images = 7 * len(pd.read_csv(synth_root / "train" / "train.csv"))  # 7 shots each
    oof = pd.read_csv(out / "oof.csv")
    # every training image once, predicted by the fold that did not train on it
    assert len(oof) == train_images and oof["path"].is_unique
    assert set(PROB_COLUMNS) <= set(oof.columns)
    assert (oof["pred"] == oof[PROB_COLUMNS].to_numpy().argmax(1)).all()
    cv = pd.read_csv(out / "summary_cv.csv")
    assert cv["folds_done"].tolist() == [2]
    fitted = json.loads((out / rf.CALIBRATION).read_text())
    assert fitted["images"] == train_images
    sub = pd.read_csv(out / rf.SUBMISSION)
    info = pd.read_csv(synth_root / "eval" / "info.csv")
    assert sub["ImageID"].tolist() == info["ImageID"].tolist()
    assert sub["ans"].between(0, 17).all()
    assert "out-of-fold: macro-F1" in r.stdout and "2 model(s), tta, calibrated" in r.stdout
    assert f"maskcls.label_issues {out}" in r.stdout

    # interrupted after fold 0: fold 0 is kept, fold 1 and the later steps run again
    kept = (out / "0" / rf.BEST_CKPT).stat().st_mtime_ns
    shutil.rmtree(out / "1")
    (out / rf.SUBMISSION).unlink()
    r = cli(*args, module=SUBMIT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "fold 1/2: done" in r.stdout and "fold 2/2: training" in r.stdout
    assert (out / "0" / rf.BEST_CKPT).stat().st_mtime_ns == kept
    assert (out / rf.SUBMISSION).is_file()

    # finished: the same command says so; another one is refused
    r = cli(*args, module=SUBMIT)
    assert r.returncode == 0 and "is complete" in r.stdout
    r = cli(*args, "loss=focal", module=SUBMIT)
    assert r.returncode == 1 and "started with other settings" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

    # a setting added to conf/ since, at the value the fold's model took without it, is no
    # change: an older submission folder still finishes
    recorded = out / "0" / rf.CONFIG
    plan = Plan(out, 2, args[2:-2])
    assert differences(out / "0", fold_overrides(plan, 0)) == []
    recorded.write_text(recorded.read_text().replace("  age_regression: 0.0\n", "", 1))
    assert "age_regression" not in recorded.read_text()
    assert differences(out / "0", fold_overrides(plan, 0)) == []

    # conf/ changed since fold 0 was trained (its recorded backbone stands for that): the same
    # command would ensemble two recipes, so it is refused before fold 2 trains
    recorded.write_text(recorded.read_text().replace("backbone: resnet18",
                                                     "backbone: resnet10t", 1))
    shutil.rmtree(out / "1")
    (out / rf.SUBMISSION).unlink()
    r = cli(*args, module=SUBMIT)
    assert r.returncode == 1, r.stdout
    assert "fold 1 was trained with another config" in r.stderr
    assert "model.backbone: 'resnet10t' then, 'resnet18' now" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (out / "1").exists()


def test_a_submission_run_with_relative_paths_finishes_after_an_interruption(
        synth_root: Path, tmp_path: Path) -> None:
    # as a user runs it: from their own folder, the tree and --out relative, the cache under
    # the default data/ folder. The folds record every path absolute; resuming must still
    # find them trained with the same config. They train with zoom, so the submission is
    # predicted with the five crops too, unasked
    (tmp_path / "tree").symlink_to(synth_root)
    args = ["--folds", "2", "data=competition", "data.root=tree", *TINY_RUN,
            "augment.scale=0.1", "--out", "sub"]
    r = cli(*args, module=SUBMIT, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "sub"
    assert str(tmp_path / "data" / "cache") in (out / "0" / rf.CONFIG).read_text()
    # fold 0 as a resume in place leaves it (resume=: its own last.ckpt); fold 1 never ran
    recorded = out / "0" / rf.CONFIG
    recorded.write_text(recorded.read_text().replace(
        "ckpt_path: null", f"ckpt_path: {out / '0' / rf.LAST_CKPT}", 1))
    shutil.rmtree(out / "1")
    (out / rf.SUBMISSION).unlink()
    r = cli(*args, module=SUBMIT, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "fold 2/2: training" in r.stdout and (out / rf.SUBMISSION).is_file()
    assert f"2 model(s), tta, five {rf.CROP_VIEWS:g} crops, calibrated" in r.stdout


@pytest.mark.parametrize(("extra", "says"), [
    (["loss=facal"], "did you mean loss=focal"),
    (["data.imagesize=[32,24]"], "did you mean data.image_size"),
    (["loss=ce,focal"], "one submission trains one configuration"),
    (["data.fold=1"], "use --folds"),
    (["hydra.run.dir=x"], "use --out"),
    (["--folds", "1"], "at least 2 folds"),
    (["--tta-crop", "1"], "--tta-crop 1: give the crops' share of the height and width in (0, 1)"),
    (["--tta-crop", "most"], "--tta-crop most: give the crops' share"),
])
def test_a_wrong_submit_command_is_refused_in_one_line_before_any_folder(
        extra: list[str], says: str, tmp_path: Path) -> None:
    out = tmp_path / "sub"
    r = cli(*extra, "--out", str(out), module=SUBMIT)
    assert r.returncode != 0 and says in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_submit_refuses_a_folder_of_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    r = cli("--out", str(tmp_path), module=SUBMIT)
    assert r.returncode == 1 and "already holds other files" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_the_submission_is_predicted_with_the_views_its_folds_trained_with(tmp_path: Path
                                                                          ) -> None:
    assert crop_setting("auto") == AUTO and crop_setting("none") is None
    assert crop_setting("0.85") == 0.85
    # auto leaves the choice to prediction, which reads the folds' recorded augmentation
    # (Source.crop_views: tests/test_predict.py; end to end: the relative-paths test above)
    auto = predict_settings(Plan(tmp_path, 2, []))
    assert auto.tta and auto.tta_crop is None and auto.ckpt == str(tmp_path)
    assert not predict_settings(Plan(tmp_path, 2, [], tta=False)).tta  # --no-tta: no views
    assert predict_settings(Plan(tmp_path, 2, [], tta=False, tta_crop=0.9)).tta_crop == 0.9
    assert predict_settings(Plan(tmp_path, 2, [], tta_crop=0.8)).tta_crop == 0.8  # as given
    assert predict_settings(Plan(tmp_path, 2, [], tta_crop=None)).tta_crop == 0  # none


def test_a_submission_begun_before_the_crop_flag_continues(tmp_path: Path) -> None:
    out = tmp_path / "sub"
    out.mkdir()
    old = {"folds": 3, "overrides": ["loss=focal"], "tta": True, "calibrate": True}
    (out / RECORD).write_text(json.dumps(old))
    claim(Plan(out, 3, ["loss=focal"])).release()  # the same command: the default views
    with pytest.raises(RunFolderError, match=r"other settings \(--folds 3 loss=focal\);"):
        claim(Plan(out, 3, ["loss=focal"], tta_crop=0.8))
    with pytest.raises(RunFolderError, match="started with other settings .*--tta-crop none"):
        (out / RECORD).write_text(json.dumps({**old, "tta_crop": None}))
        claim(Plan(out, 3, ["loss=focal"]))


def test_each_fold_is_skipped_resumed_or_started_by_what_its_folder_holds(tmp_path: Path
                                                                         ) -> None:
    plan = Plan(tmp_path, 3, ["loss=focal"])
    (tmp_path / "0" / "checkpoints").mkdir(parents=True)
    (tmp_path / "0" / rf.METRICS_JSON).write_text("{}")
    (tmp_path / "1" / "checkpoints").mkdir(parents=True)
    (tmp_path / "1" / rf.LAST_CKPT).write_bytes(b"")
    (tmp_path / "2" / ".hydra").mkdir(parents=True)  # stopped before its first epoch
    (tmp_path / "2" / rf.CONFIG).write_text("a: 1")
    assert fold_command(plan, 0) is None
    assert fold_command(plan, 1)[1:] == [f"resume={tmp_path / '1'}"]
    assert fold_command(plan, 2)[1:] == [f"hydra.run.dir={tmp_path / '2'}", "data.n_folds=3",
                                         "data.fold=2", "loss=focal"]
    assert not (tmp_path / "2").exists()  # it trained nothing: started afresh


def test_an_ensemble_folder_calibrates_with_its_own_out_of_fold_offsets(
        fold_runs: Path, tmp_path: Path) -> None:
    sweep = shutil.copytree(fold_runs, tmp_path / "sweep")
    members = Source.resolve(str(sweep), None, calibrate=True).offsets
    mean = calibration.mean_offsets([calibration.load(sweep / "0" / rf.CALIBRATION),
                                     calibration.load(sweep / "1" / rf.CALIBRATION)])
    assert members == mean  # no file of its own: the members' mean
    own = {"mask": [0.0, 0.5, 0.0], "gender": [0.0, -0.3], "age": [0.0, 0.1, 1.2]}
    calibration.save({"offsets": own}, sweep / rf.CALIBRATION)
    assert Source.resolve(str(sweep), None, calibrate=True).offsets == own
