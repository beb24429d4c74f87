"""A run reads the data it was given and records it so that a resume, a copy of its folder or a
prediction from another working folder reads the same: the README's small-tree recipe, relative
paths, moved run folders, data fingerprints."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import ROOT, TINY_RUN, assert_one_line_error, cli
from omegaconf import OmegaConf

from maskcls.synth import SynthConfig, generate

SMALL = SynthConfig(persons=12, eval_persons=3, seed=5, width=48, height=64)


def _tree(folder: Path, name: str = "small-tree", cfg: SynthConfig = SMALL) -> Path:
    return generate(folder / name, cfg, workers=1)


def test_a_generated_tree_given_by_data_root_trains_whatever_its_settings(tmp_path):
    """The README's recipe: synth --out small-tree, then train.py data.root=small-tree (the
    default data group still names the 600-person default tree's settings)."""
    made = subprocess.run([sys.executable, "-m", "maskcls.synth", "--out", "small-tree",
                           "--persons", "12", "--eval-persons", "3", "--width", "48",
                           "--height", "64", "--workers", "1"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    res = cli("data.root=small-tree", *TINY_RUN[1:], "hydra.run.dir=run", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    saved = OmegaConf.load(tmp_path / "run" / "config.yaml")
    # recorded absolute, and as data, not as a tree to generate
    assert saved.data.root == str(tmp_path / "small-tree")
    assert saved.data.synthetic is None
    assert Path(saved.paths.data_dir).is_absolute()


def test_relative_inputs_are_recorded_absolute_and_predict_reads_them_elsewhere(tmp_path):
    tree = _tree(tmp_path / "work")
    other = _tree(tmp_path / "elsewhere", cfg=SynthConfig(persons=12, eval_persons=2, seed=9,
                                                          width=48, height=64))
    res = cli("data.root=small-tree", *TINY_RUN, "hydra.run.dir=run", cwd=tmp_path / "work")
    assert res.returncode == 0, res.stderr[-3000:]
    # from another folder that holds a tree of the same relative name
    pred = cli(f"ckpt={tmp_path / 'work' / 'run'}", script="predict.py",
               cwd=tmp_path / "elsewhere")
    assert pred.returncode == 0, pred.stderr[-3000:]
    sub = pd.read_csv(tmp_path / "work" / "run" / "submission.csv")
    assert set(sub["ImageID"]) == set(pd.read_csv(tree / "eval" / "info.csv")["ImageID"])
    assert "note:" not in pred.stdout
    # another eval set is allowed for prediction, and said in one line
    out = tmp_path / "other.csv"
    pred = cli(f"ckpt={tmp_path / 'work' / 'run'}", f"data.root={other}", f"output={out}",
               script="predict.py")
    assert pred.returncode == 0, pred.stderr[-3000:]
    notes = [line for line in pred.stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "is not the one the model's run saw" in notes[0], pred.stdout


def test_a_copied_run_folder_resumes_into_the_copy_only(tmp_path):
    tree = _tree(tmp_path)
    run = tmp_path / "run"
    res = cli(f"data.root={tree}", *TINY_RUN[1:], "trainer.max_epochs=2", f"hydra.run.dir={run}")
    assert res.returncode == 0, res.stderr[-3000:]
    before = {p.name: p.read_bytes() for p in [run / "metrics.csv", run / "checkpoints" /
                                                "last.ckpt", run / "metrics.json"]}
    copy = tmp_path / "run-moved"
    shutil.copytree(run, copy)
    res = cli(f"resume={copy}", "trainer.max_epochs=3", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    for name, content in before.items():  # the original is untouched
        assert (run / name if name != "last.ckpt" else run / "checkpoints" / name
                ).read_bytes() == content, name
    assert sorted(p.name for p in (copy / "checkpoints").iterdir()) == ["best.ckpt",
                                                                       "last.ckpt"]
    assert json.loads((copy / "metrics.json").read_text())["epochs"] == 3
    epochs = pd.read_csv(copy / "metrics.csv")["epoch"].dropna().unique()
    assert sorted(epochs.astype(int)) == [0, 1, 2]
    saved = OmegaConf.load(copy / "config.yaml")
    assert saved.callbacks.last_checkpoint.dirpath == str(copy / "checkpoints")


def test_a_resume_on_other_data_is_refused_before_training(tmp_path):
    tree = _tree(tmp_path)
    run = tmp_path / "run"
    res = cli(f"data.root={tree}", *TINY_RUN[1:], "trainer.max_epochs=1", f"hydra.run.dir={run}")
    assert res.returncode == 0, res.stderr[-3000:]
    last = (run / "checkpoints" / "last.ckpt").read_bytes()
    other = _tree(tmp_path, "other", SynthConfig(persons=13, eval_persons=3, seed=5, width=48,
                                                 height=64))
    res = cli(f"resume={run}", "trainer.max_epochs=2", f"data.root={other}")
    assert_one_line_error(res, "trained on other data", "people ", "images ")
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == last
    # the same data moved elsewhere is fine
    moved = tmp_path / "moved-tree"
    shutil.copytree(tree, moved)
    res = cli(f"resume={run}", "trainer.max_epochs=2", f"data.root={moved}")
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.parametrize(("tags", "recorded"), [("focal", ["focal"]), ("[a,b]", ["a", "b"])])
def test_a_tag_given_without_brackets_is_one_tag(synth_root, tmp_path, tags, recorded):
    from conftest import make_cfg

    from maskcls.training.recipe import check_config

    cfg = make_cfg(synth_root, tmp_path / "run", f"tags={tags}")
    check_config(cfg)
    assert list(cfg.tags) == recorded


@pytest.mark.parametrize("tags", ["['']", "[" + "x" * 100 + "]"])
def test_tags_a_tracker_would_refuse_are_named_before_data(synth_root, tmp_path, tags):
    res = cli(f"data.root={synth_root}", *TINY_RUN, f"hydra.run.dir={tmp_path / 'r'}",
              f"tags={tags}", "logger=csv")
    assert_one_line_error(res, "tags:")
    assert not (tmp_path / "r").exists()


def test_a_data_error_after_the_claim_leaves_no_run_folder(synth_copy, tmp_path):
    fixes = tmp_path / "fixes.csv"
    person = sorted((synth_copy / "train" / "images").glob("0*"))[0].name.split("_")[0]
    fixes.write_text(f"person_id,field,value\n{person},age,20\n{person},age,70\n")
    res = cli(f"data.root={synth_copy}", *TINY_RUN, f"data.corrections={fixes}",
              f"hydra.run.dir={tmp_path / 'r'}")
    assert_one_line_error(res, "two age fixes")
    assert not (tmp_path / "r").exists()


def test_a_data_root_given_as_run_folder_gets_nothing_written_into_it(synth_copy):
    before = sorted(p.relative_to(synth_copy) for p in synth_copy.rglob("*"))
    res = cli(f"data.root={synth_copy}", *TINY_RUN, f"hydra.run.dir={synth_copy}")
    assert_one_line_error(res, "already holds other files")
    assert sorted(p.relative_to(synth_copy) for p in synth_copy.rglob("*")) == before


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)


def test_sigterm_stops_a_run_with_143_and_says_how_to_resume(synth_root, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), f"data.root={synth_root}",
                             *TINY_RUN, "trainer.max_epochs=50", f"hydra.run.dir={run}"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(run / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: SIGTERM stopped the run") and f"resume={run}" in last, last
    assert "Traceback" not in err
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] >= 0


def _ctrl_c_as_at_a_terminal() -> None:
    """A suite started in the background (``make test &``) inherits SIGINT ignored, and a
    Python started so never turns it into KeyboardInterrupt: give the run a terminal's."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig,code,name", [(signal.SIGTERM, 143, "SIGTERM"),
                                           (signal.SIGINT, 130, "Ctrl-C")])
def test_a_stopped_sweep_records_the_jobs_that_never_ran(synth_root, tmp_path, sig, code, name):
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "-m",
                             f"data.root={synth_root}", *TINY_RUN, "trainer.max_epochs=50",
                             f"hydra.sweep.dir={sweep}", "seed=1,2,3"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ctrl_c_as_at_a_terminal)
    _wait_for(sweep / "0" / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    assert f"error: {name} stopped the run" in err
    record = json.loads((sweep / "interrupted.json").read_text())
    assert record["interrupted_job"] == 0 and record["never_ran"] == [1, 2]
    assert record["resume"] == f"python train.py resume={sweep / '0'}"
    assert not (sweep / "1").exists()
