"""What must never happen: code from a checkpoint, an overwritten result, wrong data used
silently, a flag meaning its opposite; and bad input ends in one line naming the culprit."""

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT, TINY, TINY_RUN, assert_one_line_error, cli, evil_checkpoint, make_cfg
from omegaconf import OmegaConf
from PIL import Image

from maskcls import atomic
from maskcls.config import PredictData, PredictSettings
from maskcls.data import catalog as cat
from maskcls.data.corrections import apply_corrections
from maskcls.data.dataset import MAX_IMAGE_PIXELS, read_rgb, unreadable_images
from maskcls.errors import (
    CheckpointError,
    ConfigError,
    DataLayoutError,
    ImageReadError,
    RunFolderError,
)
from maskcls.inference import predict
from maskcls.run.checkpoints import SafeCheckpointIO, load_checkpoint
from maskcls.run.folder import resume_config
from maskcls.synth import SynthConfig, ensure_synthetic, generate
from maskcls.training.recipe import check_config, train


def _evil_checkpoint(fold_runs: Path, tmp_path: Path) -> tuple[Path, Path]:
    return evil_checkpoint(fold_runs / "0" / "checkpoints" / "last.ckpt", tmp_path)


# ------------------------------------------------------------------ code from a checkpoint
def test_a_local_malicious_ckpt_path_ends_in_one_line_before_data(fold_runs, synth_root,
                                                                   tmp_path):
    evil, marker = _evil_checkpoint(fold_runs, tmp_path)
    run = tmp_path / "run"
    res = cli(f"data.root={synth_root}", *TINY_RUN, f"hydra.run.dir={run}",
              f"ckpt_path={evil}")
    assert_one_line_error(res, str(evil), "not a loadable checkpoint", "weights_only=True")
    assert not marker.exists()
    assert not (run / "checkpoints").exists() and not (run / "config.yaml").exists()
    assert "caching" not in res.stderr  # stopped before any image was read


def test_a_remote_ckpt_path_is_refused_without_fetching(synth_root, tmp_path):
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/x.ckpt"
        res = cli(f"data.root={synth_root}", *TINY_RUN, f"hydra.run.dir={tmp_path / 'run'}",
                  f"ckpt_path={url}")
        assert_one_line_error(res, "remote checkpoints are not loaded")
        with pytest.raises(CheckpointError, match="remote"):
            SafeCheckpointIO().load_checkpoint(url)
        with pytest.raises(CheckpointError, match="remote"):
            load_checkpoint("s3://bucket/x.ckpt")
    finally:
        server.shutdown()
    assert requests == []


def test_lightning_loads_go_through_the_safe_loader(fold_runs, tmp_path):
    evil, marker = _evil_checkpoint(fold_runs, tmp_path)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        SafeCheckpointIO().load_checkpoint(evil)
    assert not marker.exists()
    good = SafeCheckpointIO().load_checkpoint(fold_runs / "0" / "checkpoints" / "last.ckpt")
    assert "optimizer_states" in good


def test_best_checkpoint_is_weights_only_and_last_is_complete(fold_runs, synth_root,
                                                             tmp_path):
    best = fold_runs / "0" / "checkpoints" / "best.ckpt"
    last = fold_runs / "0" / "checkpoints" / "last.ckpt"
    b, full = load_checkpoint(best), load_checkpoint(last)
    assert "optimizer_states" not in b and "optimizer_states" in full
    assert b["hyper_parameters"]["backbone"] and b["MaskDataModule"]["image_size"]
    assert best.stat().st_size < 0.6 * last.stat().st_size
    with pytest.raises(CheckpointError, match="weights only"):  # cannot continue training
        check_config(make_cfg(synth_root, tmp_path / "run", f"ckpt_path={best}"))


def test_a_truncated_last_ckpt_on_resume_ends_in_one_line(fold_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fold_runs / "0", run)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])
    assert_one_line_error(cli(f"resume={run}"), str(last), "truncated")


@pytest.mark.parametrize("content", ["", "data: {root: x}\n", "{{{not yaml"],
                         ids=["empty", "partial", "garbled"])
def test_a_damaged_run_config_on_resume_ends_in_one_line(fold_runs, tmp_path, content):
    run = tmp_path / "run"
    shutil.copytree(fold_runs / "0", run)
    (run / "config.yaml").write_text(content)
    assert_one_line_error(cli(f"resume={run}"), str(run / "config.yaml"))


# ------------------------------------------------------------------- overwritten results
def test_runs_started_together_get_their_own_folders(synth_root, tmp_path):
    cmd = [sys.executable, str(ROOT / "train.py"), f"data.root={synth_root}", *TINY_RUN]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    runs = sorted(p.parent for p in tmp_path.glob("outputs/*/*/metrics.json"))
    assert len(runs) == 2 and runs[0] != runs[1]


def test_a_run_never_writes_into_another_runs_folder(fold_runs, synth_root, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(fold_runs / "0", other)
    before = {p: p.stat().st_mtime_ns for p in other.rglob("*") if p.is_file()}
    with pytest.raises(RunFolderError, match="already holds another run's files"):
        train(make_cfg(synth_root, other))
    assert {p: p.stat().st_mtime_ns for p in other.rglob("*") if p.is_file()} == before
    res = cli(f"data.root={synth_root}", *TINY_RUN, f"hydra.run.dir={other}")
    assert_one_line_error(res, "already holds another run's files", f"resume={other}")
    assert {p: p.stat().st_mtime_ns for p in other.rglob("*") if p.is_file()
            if p.suffix != ".log" and ".hydra" not in p.parts} == \
        {p: t for p, t in before.items() if ".hydra" not in p.parts}


def test_a_running_run_cannot_be_resumed_or_joined(synth_root, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), f"data.root={synth_root}",
                             *TINY_RUN, "trainer.max_epochs=30", f"hydra.run.dir={run}"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        last = run / "checkpoints" / "last.ckpt"
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline and not (
                last.exists() and torch.load(last, weights_only=True)["epoch"] >= 1):
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before the test could resume it"
        assert_one_line_error(cli(f"resume={run}"), "is in use by a running process")
    finally:
        proc.kill()
        proc.wait(timeout=60)
    # once it is gone, its lock goes with it (the kernel releases it): resume works
    done = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] + 1
    assert_one_line_error(cli(f"resume={run}", f"trainer.max_epochs={done - 1}"),
                          f"has already trained {done} epoch(s)")
    res = cli(f"resume={run}", f"trainer.max_epochs={done + 1}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text())["epochs"] == done + 1


def test_a_sweep_never_writes_into_another_sweeps_folder(fold_runs, synth_root, tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(fold_runs, sweep)
    before = sorted(p.relative_to(sweep) for p in sweep.rglob("*"))
    res = cli("-m", f"data.root={synth_root}", *TINY_RUN, "seed=1,2", f"hydra.sweep.dir={sweep}")
    assert_one_line_error(res, "already holds another sweep's jobs")
    assert sorted(p.relative_to(sweep) for p in sweep.rglob("*")) == before


def test_only_one_of_two_claims_on_a_folder_wins(tmp_path):
    atomic.write_text(tmp_path / "config.yaml", "a: 1\n", exclusive=True)
    with pytest.raises(FileExistsError):
        atomic.write_text(tmp_path / "config.yaml", "a: 2\n", exclusive=True)
    assert (tmp_path / "config.yaml").read_text() == "a: 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


@pytest.mark.parametrize("target", ["best.ckpt", "config.yaml", "info.csv", "folder", "ckpt.csv",
                                    "model.pt"])
def test_predict_refuses_outputs_that_are_inputs_or_folders(fold_runs, synth_copy, tmp_path,
                                                           target):
    run = tmp_path / "run"
    shutil.copytree(fold_runs / "0", run)
    output = {"best.ckpt": run / "checkpoints" / "best.ckpt", "config.yaml": run / "config.yaml",
              "info.csv": synth_copy / "eval" / "info.csv", "folder": run,
              "ckpt.csv": synth_copy / "train" / "new.csv", "model.pt": tmp_path / "model.pt"
              }[target]
    if target == "model.pt":
        output.write_bytes(b"weights")
    before = {p: p.read_bytes() for p in [*run.rglob("*"), *synth_copy.rglob("*.csv"), output]
              if p.is_file()}
    with pytest.raises(ConfigError, match="output="):
        predict(PredictSettings(ckpt=str(run),
                                data=PredictData(str(synth_copy)),
                                output=str(output)))
    after = {p: p.read_bytes() for p in [*run.rglob("*"), *synth_copy.rglob("*.csv"), output]
             if p.is_file()}
    assert after == before


def test_outputs_have_ordinary_permissions(fold_runs, synth_root, tmp_path):
    old = os.umask(0o022)
    try:
        res = predict(PredictSettings(ckpt=str(fold_runs / "0"),
                                      data=PredictData(str(synth_root)),
                                      output=str(tmp_path / "sub.csv"),
                                      save_probs=True,
                                      num_workers=0))
        atomic.write_text(tmp_path / "x.json", "{}")
    finally:
        os.umask(old)
    for path in (res["submission"], res["probs"], tmp_path / "x.json",
                 fold_runs / "0" / "checkpoints" / "best.ckpt",
                 fold_runs / "0" / "checkpoints" / "last.ckpt",
                 fold_runs / "0" / "metrics.json", fold_runs / "0" / "config.yaml",
                 fold_runs / "0" / "val_predictions.csv"):
        assert oct(path.stat().st_mode & 0o777) == oct(0o644), path


# ------------------------------------------------------------------------- resume rows
def test_resume_applies_allowed_overrides_and_refuses_the_rest(fold_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fold_runs / "0", run)
    given = OmegaConf.create({"trainer": {"max_epochs": 5}, "data": {"num_workers": 1}})
    cfg = resume_config(run, ["trainer.max_epochs=5", "data.num_workers=1"], given)
    assert cfg.trainer.max_epochs == 5 and cfg.data.num_workers == 1
    assert cfg.ckpt_path == str(run / "checkpoints" / "last.ckpt")
    assert cfg.loss == OmegaConf.load(run / "config.yaml").loss
    res = cli(f"resume={run}", "loss=focal", "optimizer.lr=0.1")
    assert_one_line_error(res, "loss, optimizer.lr cannot be changed on resume")


def test_resume_continues_with_more_epochs(synth_root, tmp_path):
    run = tmp_path / "run"
    assert cli(f"data.root={synth_root}", *TINY_RUN, f"hydra.run.dir={run}").returncode == 0
    res = cli(f"resume={run}", "trainer.max_epochs=2")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = pd.read_csv(run / "metrics.csv")
    assert rows["epoch"].dropna().unique().tolist() == [0, 1]
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2
    assert OmegaConf.load(run / "config.yaml").trainer.max_epochs == 2


# ------------------------------------------------------------------ wrong data silently
def test_competition_data_needs_a_root(tmp_path):
    res = cli("data=competition", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert_one_line_error(res, "data.root must be given")
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "run").exists()  # a refused run leaves no folder


def test_a_refused_run_leaves_no_folder_but_others_runs_stay(fold_runs, tmp_path):
    res = cli("model.backbone=resnet1", cwd=tmp_path)
    assert_one_line_error(res, "resnet1")
    assert [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()] == []
    # a folder with anything beyond Hydra's record is not this run's to remove
    other = tmp_path / "other"
    shutil.copytree(fold_runs / "0", other)
    res = cli("model.backbone=resnet1", f"hydra.run.dir={other}", cwd=tmp_path)
    assert_one_line_error(res, "resnet1")
    assert (other / "checkpoints" / "best.ckpt").exists() and (other / ".hydra").is_dir()


def test_a_mistyped_root_is_an_error_not_a_new_tree(tmp_path):
    res = cli(f"data.root={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_line_error(res, "data.root=", "does not exist")
    assert not (tmp_path / "nope").exists()
    assert not (tmp_path / "run").exists()


def test_the_default_synthetic_location_is_generated_and_checked(tmp_path):
    small = SynthConfig(persons=3, eval_persons=1, width=24, height=32)
    root = tmp_path / "synthetic"
    assert ensure_synthetic(root, small) is True
    assert ensure_synthetic(root, small) is False
    with pytest.raises(ConfigError, match="seed=0, but data.synthetic asks for seed=5"):
        ensure_synthetic(root, SynthConfig(persons=3, eval_persons=1, width=24, height=32,
                                           seed=5))


# --------------------------------------------------------------------- typed options
@pytest.mark.parametrize(("override", "message"), [
    ("data.batch_size=abc", "data.batch_size must be >= 1, got 'abc' (expected an integer)"),
    ("data.batch_size=0", "data.batch_size must be >= 1"),
    ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches must be >= 1"),
    ("optimizer.lr=-1", "optimizer.lr must be > 0"),
    ("optimizer.lr=abc", "optimizer.lr must be > 0, got 'abc' (expected a number)"),
    ("seed=abc", "seed must be in 0..4294967295, got 'abc'"),
    ("scheduler.warmup_epochs=-1", "scheduler.warmup_epochs must be >= 0"),
    ("data.n_folds=0", "data.n_folds must be at least 2"),
    ("data.n_folds=1", "data.n_folds must be at least 2"),
    ("trainer.max_epochs=0", "trainer.max_epochs must be >= 1"),
    ("data.val_ratio=1.5", "data.val_ratio must be in (0, 1)"),
    ("data.n_folds=abc", "data.n_folds must be an integer or null, got 'abc'"),
    ("data.undersample.keep_masked=abc", "keep_masked must be an integer, got 'abc'"),
    ("data.undersample.keep_masked=9", "keep_masked must be in 1..5, got 9"),
    ("loss=focal loss.gamma=abc", "loss.gamma must be a number, got 'abc'"),
    ("loss=focal loss.gamma=-1", "loss.gamma must be >= 0, got -1"),
    ("model.pretrained=maybe", "model.pretrained must be true or false, got 'maybe'"),
    ("data.verify=2", "data.verify must be true or false, got 2"),
    ("loss.weighted=perhaps", "loss.weighted must be true or false, got 'perhaps'"),
    ("trainer.accelerator=gpu", "no CUDA GPU is visible"),
    ("trainer.precision=17", "trainer.precision must be one of"),
    ("trainer.devices=abc", "trainer.devices must be auto"),
    ("+trainer.fast_dev_run=no", "trainer.fast_dev_run must be >= 0"),
    ("data.undersample.resample_each_epoch=never", "resample_each_epoch must be true or false"),
    ("+data.undersample.keepmasked=1", "did you mean data.undersample.keep_masked?"),
    ("monitor_mode=up", "monitor_mode must be one of max, min, got 'up'"),
    ("optimizer=sgd optimizer.momentum=1.5", "optimizer.momentum must be in [0, 1)"),
    ("+optimizer.momentum=0.9", "optimizer.momentum is not a setting of optimizer (AdamW)"),
    ("trainer.deterministic=maybe", "trainer.deterministic must be true, false or warn"),
])
def test_bad_option_values_are_named_before_data_is_read(synth_root, tmp_path, override,
                                                         message):
    if override == "trainer.accelerator=gpu" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    cfg = make_cfg(synth_root, tmp_path / "run", *override.split())
    with pytest.raises(ConfigError) as e:
        train(cfg)
    assert message in str(e.value)
    assert not (tmp_path / "run").exists()


def test_bad_values_print_one_line_from_the_command_line(synth_root, tmp_path):
    assert_one_line_error(cli(f"data.root={synth_root}", "data.batch_size=abc",
                              f"hydra.run.dir={tmp_path / 'run'}"), "data.batch_size")
    assert_one_line_error(cli("ckpt=x", "tta=nope", script="predict.py"),
                          "tta must be true or false, got 'nope'")


# ---------------------------------------------------------------------------- data files
def _rename_person(root: Path, new_name: str) -> Path:
    first = sorted(p for p in (root / "train" / "images").iterdir() if p.is_dir())[0]
    return first.rename(first.with_name(new_name))


@pytest.mark.parametrize(("folder", "message"), [
    ("00²001_female_Asian_45", "is not <id>_<gender>_<race>_<age>"),
    ("abc_female_Asian_45", "is not <id>_<gender>_<race>_<age>"),
    ("_female_Asian_45", "is not <id>_<gender>_<race>_<age>"),
    ("000001_female_Asian_150", "age '150' is not a whole number of years in 0..120"),
    ("000001_female_Asian_-5", "age '-5' is not a whole number"),
    ("000001_female_Asian_4²", "age '4²' is not a whole number"),
])
def test_bad_folder_names_name_the_folder(synth_copy, folder, message):
    path = _rename_person(synth_copy, folder)
    with pytest.raises(DataLayoutError, match=message) as e:
        cat.scan_train(synth_copy)
    assert str(path) in str(e.value)


@pytest.mark.parametrize(("content", "message"), [
    ("", "train.csv is empty"),
    ("id,gender,race,age,path\n²1,male,Asian,20,x\n", "id '²1' on line 2 is not a plain"),
    ("id,gender,race,age,path\n,male,Asian,20,x\n", "id '' on line 2 is not a plain"),
    ("name,age\n1,2\n", "no id, gender, race, path column"),
])
def test_bad_train_csv_names_the_file(synth_copy, content, message):
    csv = synth_copy / "train" / "train.csv"
    csv.write_text(content)
    with pytest.raises(DataLayoutError, match=message) as e:
        cat.summarise(synth_copy)
    assert str(csv) in str(e.value)


def test_an_empty_corrections_file_is_named(synth_copy, tmp_path):
    fixes = tmp_path / "fixes.csv"
    fixes.write_text("")
    with pytest.raises(DataLayoutError, match=f"{fixes} is empty"):
        apply_corrections(cat.scan_train(synth_copy), fixes)
    fixes.write_text("person_id,field,value\n00x1,age,30\n")
    with pytest.raises(DataLayoutError, match="person_id '00x1' is not a plain decimal id"):
        apply_corrections(cat.scan_train(synth_copy), fixes)


@pytest.mark.parametrize(("rows", "message"), [
    ([], "lists no images"),
    (["", "a.jpg"], "blank ImageID"),
    (["dup", "dup"], "listed more than once: dup"),
])
def test_bad_info_csv_is_named(synth_copy, rows, message):
    info = synth_copy / "eval" / "info.csv"
    pd.DataFrame({"ImageID": rows, "ans": [0] * len(rows)}).to_csv(info, index=False)
    with pytest.raises(DataLayoutError, match=message) as e:
        cat.scan_eval(synth_copy)
    assert str(info) in str(e.value)


# --------------------------------------------------------------------------------- images
def _photo() -> Image.Image:
    """A small asymmetric picture: any rotation or flip changes it."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(40, 30, 3), dtype=np.uint8)
    pixels[:8, :8] = (255, 0, 0)
    return Image.fromarray(pixels)


def test_images_the_pipeline_cannot_use_as_they_are_are_converted(tmp_path):
    grey16 = (np.arange(40 * 30, dtype=np.uint32).reshape(40, 30) * 54).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")
    img = read_rgb(str(tmp_path / "grey16.png"))
    assert img.dtype == torch.uint8 and img.shape == (3, 40, 30)
    assert 0 < int(img.max()) < 255  # scaled, not clipped to white
    assert int(img[0, -1, -1]) == round(1199 * 54 * 255 / 65535)

    palette = _photo().convert("P")
    palette.save(tmp_path / "palette.png", transparency=0)
    assert "transparency" in Image.open(tmp_path / "palette.png").info
    assert read_rgb(str(tmp_path / "palette.png")).shape == (3, 40, 30)

    frames = [Image.new("RGB", (30, 40), c) for c in ((255, 0, 0), (0, 255, 0))]
    for ext in ("gif", "png"):
        frames[0].save(tmp_path / f"anim.{ext}", save_all=True, append_images=frames[1:])
        first = read_rgb(str(tmp_path / f"anim.{ext}"))
        assert first.shape == (3, 40, 30) and first[:, 0, 0].tolist() == [255, 0, 0]


def test_a_decompression_bomb_is_refused_unread_and_verify_finds_it(tmp_path):
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 10
    bomb = tmp_path / "bomb.png"
    Image.new("L", (side, side)).save(bomb)
    assert bomb.stat().st_size < 200_000  # a small file claiming 50+ megapixels
    with pytest.raises(ImageReadError, match=r"bomb.png: .* pixels is over the limit"):
        read_rgb(str(bomb))
    bad = unreadable_images([str(bomb)])
    assert len(bad) == 1 and "over the limit" in bad[0][1]


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(tmp_path, orientation):
    upright = _photo()
    # what a phone stores: the sensor's pixels plus a tag saying how to turn them upright
    stored = upright.transpose({3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
                                8: Image.Transpose.ROTATE_270}[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "phone.png", exif=exif)
    upright.save(tmp_path / "upright.png")
    assert torch.equal(read_rgb(str(tmp_path / "phone.png")),
                       read_rgb(str(tmp_path / "upright.png")))
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    small = read_rgb(str(tmp_path / "phone.jpg"), (20, 15))  # the draft-decoding path
    assert small.shape[1:] == (20, 15) or (small.shape[1] >= 20 and small.shape[2] >= 15)
    assert small.shape[1] > small.shape[2]  # upright: taller than wide


def test_an_undecodable_eval_image_is_reported_once_without_a_traceback(fold_runs, synth_copy,
                                                                        tmp_path):
    first = pd.read_csv(synth_copy / "eval" / "info.csv")["ImageID"][0]
    (synth_copy / "eval" / "images" / first).write_bytes(b"not an image")
    with pytest.raises(ImageReadError) as e:
        predict(PredictSettings(ckpt=str(fold_runs / "0"),
                                data=PredictData(str(synth_copy)),
                                output=str(tmp_path / "sub.csv"),
                                num_workers=2))
    message = str(e.value)
    assert first in message and "Traceback" not in message and message.count(first) == 1
    res = cli(f"ckpt={fold_runs / '0'}", f"data.root={synth_copy}",
              f"output={tmp_path / 'sub.csv'}", "num_workers=2", script="predict.py")
    assert_one_line_error(res, first)
    assert not (tmp_path / "sub.csv").exists()


def test_generated_tree_records_its_settings(tmp_path):
    cfg = SynthConfig(persons=2, eval_persons=1, width=24, height=32, seed=3)
    root = generate(tmp_path / "t", cfg, workers=1)
    assert json.loads((root / "synthetic.json").read_text())["seed"] == 3
    assert TINY.seed == 1  # the shared test tree is generated the same way
