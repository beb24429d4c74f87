"""Interruption, resume and determinism."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import cli, make_cfg
from PIL import Image

from maskcls.data.dataset import ImageReadError
from maskcls.run.checkpoints import SafeCheckpointIO
from maskcls.training.recipe import train

ROOT = Path(__file__).parents[1]


def _train_args(synth_root: Path, *extra: str) -> list[str]:
    return [f"data.root={synth_root}", "data.synthetic=null", "data.image_size=[32,24]",
            "data.batch_size=8", "trainer.max_epochs=4",
            "trainer.accelerator=cpu", "callbacks.progress_bar.refresh_rate=0",
            "augment=strong", "model.drop_rate=0.2", *extra]


# Augmentation draws in the main process, so worker processes (decoding only) do not change it.
# (The two-worker run is slow: the main-process run checks the same resume in the default suite.)
@pytest.mark.parametrize("loading", [
    ("data.num_workers=0",),
    pytest.param(("data.cache=none", "data.num_workers=2"), marks=pytest.mark.slow),
], ids=["main-process", "two-workers"])
def test_killed_run_resumes_to_the_same_result(synth_root, tmp_path, loading):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    done = cli(*_train_args(synth_root, f"hydra.run.dir={ref}", *loading))
    assert done.returncode == 0, done.stderr[-3000:]

    proc = subprocess.Popen([sys.executable, "train.py",
                             *_train_args(synth_root, f"hydra.run.dir={killed}", *loading)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run finished before it was killed"
    assert not (killed / "metrics.json").exists()
    epoch_at_kill = torch.load(last, weights_only=True)["epoch"]
    assert epoch_at_kill < 3

    resumed = cli(f"resume={killed}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = json.loads((ref / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    # last.ckpt is the last epoch's state, whether or not that epoch was the best
    assert torch.load(ref / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 3
    assert b["val"] == a["val"]
    assert (b["best_epoch"], b["epochs"]) == (a["best_epoch"], a["epochs"])
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == \
        sorted(p.name for p in (ref / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    # metrics.csv row for row: learning-rate rows kept, no row for the final re-validation
    assert (killed / "metrics.csv").read_text() == (ref / "metrics.csv").read_text()
    rows = pd.read_csv(ref / "metrics.csv")
    assert rows["epoch"].dropna().unique().tolist() == [0, 1, 2, 3]
    assert rows.filter(like="lr-").notna().any(axis=1).sum() == 4
    assert not (killed / "metrics.before_resume.csv").exists()
    assert not list(killed.glob("20*"))  # resume made no new run folder


def test_resume_needs_a_run_with_a_checkpoint(tmp_path):
    res = cli(f"resume={tmp_path}")
    assert res.returncode == 1
    assert f"resume={tmp_path}" in res.stderr and "does not exist" in res.stderr


def test_same_seed_same_run(synth_root, tmp_path):
    over = ("augment=strong", "model.drop_rate=0.2", "trainer.max_epochs=2")
    train(make_cfg(synth_root, tmp_path / "a", *over))
    train(make_cfg(synth_root, tmp_path / "b", *over))
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert a["val"] == b["val"]
    pa = pd.read_csv(tmp_path / "a" / "val_predictions.csv")
    pb = pd.read_csv(tmp_path / "b" / "val_predictions.csv")
    pd.testing.assert_frame_equal(pa, pb)
    train(make_cfg(synth_root, tmp_path / "c", *over, "seed=7"))
    pc = pd.read_csv(tmp_path / "c" / "val_predictions.csv")
    assert not pa["prob_0"].equals(pc["prob_0"])


def test_checkpoint_write_is_all_or_nothing(tmp_path):
    io = SafeCheckpointIO()  # Lightning's own save: a temporary file, renamed
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "epoch": 1}, path)
    with pytest.raises(Exception):  # noqa: B017 - whatever breaks the write
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "bad": lambda: 0}, path)
    kept = torch.load(path, weights_only=True)
    assert kept["epoch"] == 1 and torch.equal(kept["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def _damage(root: Path) -> tuple[Path, Path]:
    folders = sorted(p for p in (root / "train" / "images").iterdir() if p.is_dir())
    empty = next(folders[0].glob("mask1.*"))
    empty.write_bytes(b"")
    truncated = next(folders[1].glob("normal.*"))
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    return empty, truncated


def test_verify_lists_every_unreadable_image(synth_copy, tmp_path):
    empty, truncated = _damage(synth_copy)
    cfg = make_cfg(synth_copy, tmp_path / "run", "data.verify=true")
    with pytest.raises(ImageReadError, match="2 of 280 images cannot be decoded") as e:
        train(cfg)
    assert str(empty) in str(e.value) and str(truncated) in str(e.value)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("workers", [0, 2])
def test_a_broken_image_names_itself_without_hanging(synth_copy, tmp_path, workers):
    empty, _ = _damage(synth_copy)
    cfg = make_cfg(synth_copy, tmp_path / "run", "data.cache=none", f"data.num_workers={workers}")
    t0 = time.monotonic()
    with pytest.raises(ImageReadError, match=r"cannot decode image"):
        train(cfg)
    assert time.monotonic() - t0 < 120


def test_odd_colour_modes_train(synth_copy, tmp_path):
    folders = sorted(p for p in (synth_copy / "train" / "images").iterdir() if p.is_dir())
    for folder, mode in zip(folders, ("RGBA", "L", "CMYK"), strict=False):
        shot = next(folder.glob("mask2.*"))
        img = Image.open(shot).convert(mode)
        img.save(shot.with_suffix(".png" if mode == "RGBA" else ".jpg"))
        if shot.suffix != (".png" if mode == "RGBA" else ".jpg"):
            shot.unlink()
    assert 0 <= train(make_cfg(synth_copy, tmp_path / "run", "data.cache=none")) <= 1
