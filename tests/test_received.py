"""A run folder, checkpoint or file from someone else is read as data: it can neither run code
nor touch files outside the run, and every new kind of bad input ends in one line."""

import json
import os
import shutil
import subprocess
import warnings

import pandas as pd
import pytest
import torch
import yaml
from conftest import TINY_RUN, assert_one_line_error, cli, make_cfg
from filelock import FileLock

from maskcls.config import PredictSettings
from maskcls.data import catalog as cat
from maskcls.data.corrections import apply_corrections
from maskcls.data.fingerprint import eval_fingerprint
from maskcls.errors import CheckpointError, ConfigError, DataLayoutError, RunFolderError
from maskcls.inference import predict
from maskcls.run.checkpoints import _confine
from maskcls.run.received import check_targets, load_config
from maskcls.training.recipe import check_config


def _copy_run(source, dst):
    shutil.copytree(source, dst, ignore=shutil.ignore_patterns("*.lock"))
    return dst


def _edit_config(run, edit):
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    edit(cfg)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))


# ------------------------------------------------------------------ 1. targets in a config
@pytest.mark.parametrize("target,args", [
    ("builtins.open", ["VICTIM", "w"]),
    ("pathlib.Path.write_text", ["VICTIM", "gone"]),
    ("shutil.copyfile", ["/etc/hostname", "VICTIM"]),
    ("maskcls.atomic.write_text", ["VICTIM", "gone"]),
])
def test_resume_builds_no_target_the_project_does_not_configure(fold_runs, tmp_path, target,
                                                                args):
    run = _copy_run(fold_runs / "0", tmp_path / "run")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    args = [str(victim) if a == "VICTIM" else a for a in args]
    _edit_config(run, lambda c: c["callbacks"].update(
        evil={"_target_": target, "_args_": args}))
    last = assert_one_line_error(cli(f"resume={run}", "trainer.max_epochs=3"),
                                 "callbacks.evil._target_", target)
    assert "never allowed" in last
    assert victim.read_text() == "precious"


def test_a_nested_target_and_an_interpolation_are_refused_unresolved(fold_runs, tmp_path,
                                                                     monkeypatch):
    run = _copy_run(fold_runs / "0", tmp_path / "run")
    _edit_config(run, lambda c: c["loss"].update(inner={"deep": [{"_target_": "os.system"}]}))
    with pytest.raises(RunFolderError, match=r"loss\.inner\.deep\.0\._target_='os.system'"):
        load_config(run / "config.yaml", "resume")
    monkeypatch.setenv("MASKCLS_SECRET", "s3cret")
    run2 = _copy_run(fold_runs / "1", tmp_path / "run2")
    _edit_config(run2, lambda c: c["data"].update(root="${oc.env:MASKCLS_SECRET}"))
    export = cli(f"ckpt={run2}", "format=torchscript", f"output={tmp_path / 'm.pt'}",
                 module="maskcls.export")
    for res in (cli(f"resume={run2}", "trainer.max_epochs=3"),
                cli(f"ckpt={run2}", f"output={tmp_path / 's.csv'}", script="predict.py"),
                export):
        assert_one_line_error(res, "data.root", "interpolation")
        assert "s3cret" not in res.stderr + res.stdout


def test_the_configured_classes_are_allowed_and_others_are_not():
    check_targets({"a": {"_target_": "torch.optim.lr_scheduler.OneCycleLR"},
                   "b": {"_target_": "pytorch_lightning.callbacks.RichProgressBar"},
                   "c": {"_target_": "maskcls.model.losses.FocalLoss"}}, "x")
    for bad in ("torch.optim.lr_scheduler.torch", "maskcls.model.losses.instantiate",
                "pytorch_lightning.callbacks.os", "torch.load", "builtins.eval", 3):
        with pytest.raises(RunFolderError, match="is not a class this project configures"):
            check_targets({"k": [{"_target_": bad}]}, "x")


def test_exported_model_metadata_may_not_carry_a_target(fold_runs, tmp_path):
    from maskcls.export.reader import _metadata

    meta = {"format_version": 1, "pipeline": {"image_size": [32, 24], "mean": [0, 0, 0],
                                              "std": [1, 1, 1]},
            "extra": {"_target_": "subprocess.call"}}
    with pytest.raises(RunFolderError, match="extra._target_"):
        _metadata(json.dumps(meta), tmp_path / "m.onnx")


# ---------------------------------------------------------- 2. paths restored from a ckpt
def test_a_crafted_last_ckpt_cannot_make_resume_delete_a_file(fold_runs, tmp_path):
    run = _copy_run(fold_runs / "0", tmp_path / "run")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    escape = str(run / "checkpoints" / ".." / ".." / "victim.txt")
    for state in ckpt["callbacks"].values():
        if "best_model_path" in state:
            state.update(best_model_path=escape, last_model_path=escape,
                         kth_best_model_path=escape, best_k_models={escape: torch.tensor(1.0)})
    torch.save(ckpt, last)
    res = cli(f"resume={run}", "trainer.max_epochs=3")
    assert res.returncode == 0, res.stderr[-3000:]
    assert victim.read_text() == "precious"
    assert (run / "checkpoints" / "best.ckpt").exists()


def test_restored_checkpoint_paths_stay_in_the_run_folder(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    state = {"dirpath": str(old / "checkpoints"),
             "best_model_path": str(old / "checkpoints/b.ckpt"),
             "last_model_path": str(old / "checkpoints/../../x"),
             "best_k_models": {str(old / "checkpoints/b.ckpt"): 1, "/etc/passwd": 2}}
    _confine(state, new)
    assert state["dirpath"] == str(new / "checkpoints")
    assert state["best_model_path"] == str(new / "checkpoints/b.ckpt")
    assert state["last_model_path"] == ""
    assert list(state["best_k_models"]) == [str(new / "checkpoints/b.ckpt")]
    _confine(state, None)  # another run's checkpoint: none of its paths is ours
    assert state["best_model_path"] == "" and state["best_k_models"] == {}


def test_ckpt_path_that_would_train_nothing_is_refused(fold_runs, synth_root, tmp_path):
    last = fold_runs / "0" / "checkpoints" / "last.ckpt"
    cfg = make_cfg(synth_root, tmp_path / "o", f"ckpt_path={last}", "data.n_folds=2",
                   "data.fold=0", "trainer.max_epochs=2")
    with pytest.raises(ConfigError, match="has already trained 2 epoch"):
        check_config(cfg)


# ---------------------------------------------------- 4-5. what a run learns from, silently
def test_a_checkpoint_of_other_validation_people_is_refused(synth_root, tmp_path):
    from maskcls.training.recipe import build

    dm, _ = build(make_cfg(synth_root, tmp_path / "o"))
    state = dm.state_dict()
    dm.load_state_dict(dict(state))  # the same people: fine
    state["val_people"] = "0" * 16
    with pytest.raises(ConfigError, match="validated on other people"):
        dm.load_state_dict(state)


def test_repeated_swap_rows_apply_once(synth_root, tmp_path):
    df = cat.scan_train(synth_root)
    pid = df["person_id"].iloc[0]
    row = f"{pid},swap,incorrect_mask+normal\n"
    once, twice = tmp_path / "once.csv", tmp_path / "twice.csv"
    once.write_text("person_id,field,value\n" + row)
    twice.write_text("person_id,field,value\n" + row + f"{int(pid)},swap,normal+incorrect_mask\n")
    expected = apply_corrections(df, once)
    with pytest.warns(UserWarning, match="repeat an earlier row"):
        got = apply_corrections(df, twice)
    assert (got["label"] == expected["label"]).all()
    assert not (got["label"] == df["label"]).all()


# ----------------------------------------------------------------- 6. one line, no hang
@pytest.mark.parametrize("kind", ["fifo", "loop"])
def test_an_image_that_is_a_fifo_or_a_looping_link_is_named(synth_copy, kind):
    person = next(p for p in sorted((synth_copy / "train" / "images").iterdir()) if p.is_dir())
    image = next(person.glob("mask2.*"))
    image.unlink()
    if kind == "fifo":
        os.mkfifo(image)
    else:
        image.symlink_to(image.name)
    with pytest.raises(DataLayoutError, match=image.name):
        cat.scan_train(synth_copy)


@pytest.mark.parametrize("override,needles", [
    ("data.imagesize=[32,24]", ["data.imagesize is not a setting of data",
                                "did you mean data.image_size?"]),
    ("data.undersample.keepmasked=2", ["did you mean data.undersample.keep_masked?"]),
    ("model.zzz=1", ["model.zzz is not a setting of model", "its keys: age_regression, backbone",
                     "added as +model.zzz="]),
    ("+data.imagesize=[32,24]", ["data.imagesize is not a setting", "data.image_size"]),
    ("+trainer.max_epoch=3", ["trainer.max_epoch is not a setting", "trainer.max_epochs"]),
    ("+data.foo=1", ["data.foo is not a setting"]),
    ("~model", ["model: the group is missing", "model=resnet18"]),
    ("scheduler=step", ["scheduler.scheduler.step_size must be >= 1"]),
    ("data.image_size=[4000,3000]", ["needs about", "GiB for one training step"]),
])
def test_unknown_keys_and_removed_groups_are_one_line_before_data(synth_root, tmp_path,
                                                                  override, needles):
    out = tmp_path / "outputs" / "2026-12-04" / "run"  # as Hydra's default run folder
    extra = ["scheduler.scheduler.step_size=0"] if override == "scheduler=step" else []
    res = cli(f"data.root={synth_root}", *TINY_RUN, override, *extra, f"hydra.run.dir={out}")
    assert_one_line_error(res, *needles)
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("command,needles", [
    (["predict.py", "tt=true"], ["tt is not a setting of predict", "did you mean tta?"]),
    (["-m", "maskcls.export", "formt=onnx"], ["formt is not a setting of export",
                                              "did you mean format?"]),
    (["train.py", "-m", "loss=ce,focal", "trainer.max_epoch=2"],
     ["did you mean trainer.max_epochs?"]),
])
def test_a_key_typo_is_one_line_in_every_hydra_command(tmp_path, command, needles):
    """Without ``+`` Hydra's own answer is seven lines that suggest ``+key``; each command
    names the closest key instead, before torch loads (a fresh interpreter here)."""
    script, args = (command[0], command[1:]) if command[0] != "-m" else (None, command[2:])
    res = cli(*args, cwd=tmp_path, fresh=True,
              **({"script": script} if script else {"module": command[1]}))
    assert_one_line_error(res, *needles)
    assert not list(tmp_path.iterdir())  # no outputs/, no multirun folder


@pytest.mark.parametrize("field,value", [("backbone", 123), ("num_classes", [18]),
                                         ("head", None), ("mean", "abc")])
def test_a_checkpoint_with_wrongly_typed_records_is_one_error(fold_runs, tmp_path, field, value):
    run = _copy_run(fold_runs / "0", tmp_path / "run")
    path = run / "checkpoints" / "best.ckpt"
    ckpt = torch.load(path, weights_only=True)
    if field == "mean":
        next(v for k, v in ckpt.items() if k.endswith("DataModule"))["mean"] = value
    elif value is None:
        ckpt["hyper_parameters"]["head"] = {"a": 1}
    else:
        ckpt["hyper_parameters"][field] = value
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=str(path)):
        predict(PredictSettings(ckpt=str(run), output=str(tmp_path / "s.csv")))


# ----------------------------------------------------------------------- 8. ensembles
def test_an_ensemble_counts_each_model_once(fold_runs, tmp_path):
    copy = _copy_run(fold_runs / "0", tmp_path / "copy")
    res = predict(PredictSettings(ckpt=[str(fold_runs), str(fold_runs / "0"), str(copy)],
                                  output=str(tmp_path / "s.csv")))
    assert res["members"] == 2
    assert sum("counted once" in n for n in res["notes"]) == 2


def test_an_unfinished_sweep_job_is_left_out_and_named(fold_runs, tmp_path):
    sweep = _copy_run(fold_runs, tmp_path / "sweep")
    (sweep / "1" / "metrics.json").unlink()  # stopped by Ctrl-C after its first best epoch
    res = predict(PredictSettings(ckpt=str(sweep), output=str(tmp_path / "s.csv")))
    assert res["members"] == 1
    assert any("left out: 1 (unfinished)" in n for n in res["notes"]), res["notes"]


def test_a_folder_of_separate_runs_is_not_a_sweep(fold_runs, tmp_path):
    day = tmp_path / "2026-12-04"
    for name in ("12-00-00-resnet18", "13-00-00-quick-resnet18"):
        _copy_run(fold_runs / "0", day / name)
    with pytest.raises(CheckpointError, match="2 separate runs .*, not one sweep"):
        predict(PredictSettings(ckpt=str(day), output=str(tmp_path / "s.csv")))


# ------------------------------------------------------------ 9. outputs never replaced
def test_a_submission_being_written_is_refused_to_a_second_writer(fold_runs, tmp_path):
    out = tmp_path / "s.csv"
    with FileLock(f"{out}.lock"), pytest.raises(ConfigError, match="being written by another"):
        predict(PredictSettings(ckpt=str(fold_runs / "0"), output=str(out)))
    assert not out.exists()
    predict(PredictSettings(ckpt=str(fold_runs / "0"), output=str(out)))
    assert out.exists() and not (tmp_path / "s.csv.lock").exists()


def test_faces_never_replaces_an_existing_file_without_overwrite(synth_copy, fold_runs, tmp_path):
    from maskcls.faces import write_boxes

    sweep = _copy_run(fold_runs, tmp_path / "sweep")
    (sweep / "summary.csv").write_text("job\n0\n")
    with pytest.raises(ConfigError, match="file the run"):
        write_boxes(synth_copy, sweep / "summary.csv", workers=1, detector="haar",
                    overwrite=True)
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("kept")
    with pytest.raises(ConfigError, match="--overwrite"):
        write_boxes(synth_copy, boxes, workers=1, detector="haar")
    assert boxes.read_text() == "kept"


# ------------------------------------------------------------------------ 10. messages
def test_an_info_csv_saved_with_bom_and_crlf_is_the_same_eval_set(synth_copy):
    info = synth_copy / "eval" / "info.csv"
    before = eval_fingerprint(synth_copy)
    info.write_bytes(b"\xef\xbb\xbf" + info.read_bytes().replace(b"\n", b"\r\n"))
    assert eval_fingerprint(synth_copy) == before


# ------------------------------------------------------------------ 7. the label finder
def _finder(*args):
    return cli(*map(str, args), module="maskcls.label_issues")


@pytest.mark.parametrize("damage", ["text label", "label 99", "nan prob", "no columns",
                                    "two trees"])
def test_the_label_finder_names_a_damaged_prediction_file(fold_runs, tmp_path, damage):
    sweep = _copy_run(fold_runs, tmp_path / "sweep")
    path = sweep / "1" / "val_predictions.csv"
    table = pd.read_csv(path, dtype=str)
    if damage == "text label":
        table.loc[0, "label"] = "abc"
    elif damage == "label 99":
        table.loc[0, "label"] = "99"
    elif damage == "nan prob":
        table.loc[0, "prob_3"] = ""
    elif damage == "no columns":
        table = table[["path", "label"]]
    else:
        table["path"] = table["path"].str.replace("/train/", "/copy/x/train/", regex=False)
    table.to_csv(path, index=False)
    res = _finder(sweep, "--out", tmp_path / "out")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not (tmp_path / "out").exists()


def test_the_label_finder_warns_of_missing_folds_and_keeps_edited_corrections(fold_runs,
                                                                              tmp_path):
    sweep = _copy_run(fold_runs, tmp_path / "sweep")
    (sweep / "1" / "val_predictions.csv").unlink()
    out = tmp_path / "new" / "folder"
    res = _finder(sweep, "--out", out, "--min-f1", "0")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "job(s) 1 have no val_predictions.csv" in res.stdout
    (out / "corrections.csv").write_text("person_id,field,value\n1,age,40\n")
    again = _finder(sweep, "--out", out, "--min-f1", "0")
    assert again.returncode == 1 and "--overwrite" in again.stderr
    assert "1,age,40" in (out / "corrections.csv").read_text()
    assert _finder(sweep, "--out", out, "--overwrite", "--min-f1", "0").returncode == 0
    for top in ("0", "-1"):
        assert _finder(sweep, "--out", out, "--top", top).returncode == 2


def test_warnings_module_is_quiet_for_a_clean_corrections_file(synth_root, tmp_path):
    df = cat.scan_train(synth_root)
    fixes = tmp_path / "c.csv"
    fixes.write_text(f"person_id,field,value\n{df['person_id'].iloc[0]},age,45\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        apply_corrections(df, fixes)


@pytest.mark.parametrize("root", ["/tmp/a=b", "/tmp/a,b", "/tmp/dätä"])
def test_a_value_hydra_cannot_read_gets_the_quoting_that_works(tmp_path, root):
    for script in ("train.py", "predict.py"):
        res = cli(f"data.root={root}", "ckpt=x", script=script)
        assert_one_line_error(res, f"\"data.root='{root}'\"")
    # as suggested, Hydra reads it: the run now stops at the missing tree, naming it
    res = cli(f"data.root='{tmp_path / root.lstrip('/')}'", *TINY_RUN,
              f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_line_error(res, "does not exist")


@pytest.mark.parametrize("args,needles", [
    (["model=resnet19"], ["model=resnet19 is not an option of model", "model=resnet18"]),
    (["loss=facal"], ["did you mean loss=focal?"]),
    (["-m", "model=resnet18,resnet35"], ["model=resnet35 is not an option", "model=resnet34"]),
])
def test_a_mistyped_group_option_is_one_line(tmp_path, args, needles):
    res = cli(*args, f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 's'}")
    assert_one_line_error(res, *needles)
    assert not (tmp_path / "run").exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize("where", ["train", "parent"])
def test_a_data_root_one_level_off_names_the_right_folder(synth_root, tmp_path, where):
    given = synth_root / "train" if where == "train" else synth_root.parent
    if where == "parent":  # a tree inside a folder of the same name: <x>/train/train/images
        given = tmp_path / "outer"
        (given / "train").mkdir(parents=True)
        (given / "train" / "train").symlink_to(synth_root / "train")
    res = cli(f"data.root={given}", *TINY_RUN, f"hydra.run.dir={tmp_path / 'run'}")
    right = synth_root if where == "train" else given / "train"
    assert_one_line_error(res, "one level off", f"data.root={right}")


def test_runs_started_inside_an_outputs_folder_are_not_nested(tmp_path, monkeypatch):
    from conftest import CONF
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    inside = tmp_path / "outputs" / "2026-01-01" / "12-00-00-resnet18"
    inside.mkdir(parents=True)
    for cwd, root in ((inside, tmp_path / "outputs"), (tmp_path, "outputs")):
        monkeypatch.chdir(cwd)
        with initialize_config_dir(str(CONF), version_base="1.3"):
            cfg = compose("train", return_hydra_config=True)
        assert OmegaConf.select(cfg, "hydra.sweep.dir").startswith(f"{root}/multirun/")
        # the run folder takes the same root (its name needs a running Hydra to resolve)
        assert cfg.hydra.run._get_node("dir")._value().startswith("${outputs_root:}/")


def test_the_next_steps_printed_run_as_printed_from_another_folder(synth_root, tmp_path):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    res = cli(f"data.root={synth_root}", *TINY_RUN, "hydra.run.dir=run", cwd=here)
    assert res.returncode == 0, res.stderr[-3000:]
    steps = [ln.split("next: ", 1)[1] for ln in (res.stdout + res.stderr).splitlines()
             if ln.startswith("next: ")]
    assert len(steps) == 1 and "tta=true" in steps[0]
    done = subprocess.run(steps[0], shell=True, cwd=elsewhere, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (here / "run" / "submission.csv").exists()
    export = cli(f"ckpt={here / 'run'}", "format=torchscript", module="maskcls.export")
    assert export.returncode == 0, export.stderr[-3000:]
    step = export.stdout.split("next: ", 1)[1].strip()
    done = subprocess.run(step, shell=True, cwd=elsewhere, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (here / "run" / "submission_model.csv").exists()


def test_a_run_saved_before_its_targets_moved_still_resumes(fold_runs, tmp_path):
    """Runs record their classes by module path; a class that moved (the progress bar) or
    a node now built by a factory (the datamodule's flat keys) is found on resume."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from maskcls.run.folder import resume_config

    run = shutil.copytree(fold_runs / "0", tmp_path / "run")
    saved = OmegaConf.load(run / "config.yaml")
    saved.callbacks.progress_bar._target_ = "maskcls.progress.ProgressBar"
    saved.data._target_ = "maskcls.data.datamodule.MaskDataModule"
    OmegaConf.save(saved, run / "config.yaml")
    cfg = resume_config(run)
    assert cfg.callbacks.progress_bar._target_ == "maskcls.training.progress.ProgressBar"
    assert type(instantiate(cfg.callbacks.progress_bar)).__name__ == "ProgressBar"
    dm = instantiate(cfg.data, _convert_="all")
    assert type(dm).__name__ == "MaskDataModule" and dm.split.n_folds == saved.data.n_folds
