"""Nothing outside a command's own output is touched, outputs are whole or absent, and trackers
that cannot work say so before any data is read."""

import errno
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import ROOT, TINY_RUN, assert_one_line_error, cli
from PIL import Image

from maskcls import atomic
from maskcls.errors import DiskFullError
from maskcls.run.checkpoints import SafeCheckpointIO
from maskcls.synth import SynthConfig, generate

TINY = SynthConfig(persons=3, eval_persons=1, seed=2, width=48, height=64)


def test_synth_leaves_unrelated_siblings_alone(tmp_path):
    keep = tmp_path / ".mydata.backup"
    keep.mkdir()
    (keep / "precious.txt").write_text("mine")
    (tmp_path / ".mydata.old").mkdir()
    generate(tmp_path / "mydata", TINY, workers=1)
    assert (keep / "precious.txt").read_text() == "mine"
    assert (tmp_path / ".mydata.old").is_dir()


def test_synth_removes_only_its_own_dead_builds(tmp_path):
    dead = tmp_path / ".mydata.maskcls-synth-tmp-abc"
    dead.mkdir()
    (dead / ".maskcls-synth-building").write_text("")
    lookalike = tmp_path / ".mydata.maskcls-synth-tmp-xyz"  # no marker: not ours to remove
    lookalike.mkdir()
    generate(tmp_path / "mydata", TINY, workers=1)
    assert not dead.exists() and lookalike.is_dir()


def test_a_generated_tree_is_readable_by_others(tmp_path):
    root = generate(tmp_path / "tree", TINY, workers=1)
    assert root.stat().st_mode & 0o055 == 0o055  # group and others may read and enter


# ------------------------------------------------------------------------ faces --out


def _faces(*args: str) -> subprocess.CompletedProcess:
    return cli(*args, module="maskcls.faces")


@pytest.fixture
def small_tree(tmp_path: Path) -> Path:
    return generate(tmp_path / "data", TINY, workers=1)


@pytest.mark.parametrize("target", ["eval/info.csv", "eval", "missing/b.csv", "boxes.txt"])
def test_faces_refuses_outputs_that_are_data_or_folders(small_tree, target):
    info = (small_tree / "eval" / "info.csv").read_bytes()
    res = _faces(str(small_tree), "--out", str(small_tree / target), "--workers", "1")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1].startswith("error: --out=")
    assert (small_tree / "eval" / "info.csv").read_bytes() == info


def test_faces_on_a_missing_root_is_one_line(tmp_path):
    res = _faces(str(tmp_path / "nowhere"))
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert "does not exist" in res.stderr.strip().splitlines()[-1]


def test_faces_reports_undecodable_and_odd_images_and_keeps_the_rest(small_tree, tmp_path):
    person = sorted((small_tree / "train" / "images").glob("0*"))[0]
    corrupt = next(person.glob("mask1.*"))
    corrupt.write_bytes(corrupt.read_bytes()[:200])
    strip = next(person.glob("mask2.*"))
    Image.new("RGB", (4000, 1), "white").save(strip.with_suffix(".png"))
    strip.unlink()
    out = tmp_path / "boxes.csv"
    res = _faces(str(small_tree), "--out", str(out), "--workers", "1")
    assert res.returncode == 0, res.stderr[-3000:]
    warnings = [line for line in res.stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, res.stdout
    import pandas as pd

    table = pd.read_csv(out)
    assert len(table) >= 7 * 4 - 1  # every image but possibly the headerless one


# ------------------------------------------------------------------------ export output


def test_export_refuses_an_existing_folder_named_like_the_model(fold_runs, tmp_path):
    (tmp_path / "y.pt").mkdir()
    res = cli(f"ckpt={fold_runs / '0'}", "format=torchscript", f"output={tmp_path / 'y.pt'}",
              module="maskcls.export")
    assert_one_line_error(res, "is a folder")


def test_export_never_writes_into_the_data_tree(fold_runs, synth_root):
    res = cli(f"ckpt={fold_runs / '0'}", "format=torchscript",
              f"output={synth_root / 'eval' / 'images' / 'm.pt'}", module="maskcls.export")
    assert_one_line_error(res, "inputs")
    assert not (synth_root / "eval" / "images" / "m.pt").exists()


# --------------------------------------------------------------------- checkpoints


def test_checkpoints_are_written_beside_their_target(tmp_path, monkeypatch):
    """Not through TMPDIR (another file system: a copy, not an atomic rename)."""
    elsewhere = tmp_path / "tmpdir"
    elsewhere.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    seen = []
    real_replace = atomic.os.replace
    monkeypatch.setattr(atomic.os, "replace",
                        lambda a, b: (seen.append((Path(a).parent, Path(b))), real_replace(a, b)))
    target = tmp_path / "run" / "checkpoints" / "last.ckpt"
    SafeCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(3)}}, target)
    assert seen == [(target.parent, target)]
    assert list(elsewhere.iterdir()) == []
    assert torch.load(target, weights_only=True)["state_dict"]["w"].sum() == 3


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    SafeCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(3)}}, target)
    good = target.read_bytes()

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(DiskFullError, match=f"no space left on device writing {target}"):
        SafeCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, target)
    assert target.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


# ------------------------------------------------------------------------ MLflow


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(__import__("importlib").util.find_spec("mlflow") is None,
                    reason="needs the trackers extra")
def test_an_mlflow_server_that_does_not_answer_is_named_before_data(synth_root, tmp_path):
    uri = f"http://127.0.0.1:{_closed_port()}"
    res = cli(f"data.root={synth_root}", *TINY_RUN, "logger=mlflow",
              f"logger.mlflow.tracking_uri={uri}", f"paths.tracking_dir={tmp_path}",
              f"hydra.run.dir={tmp_path / 'r'}")
    assert_one_line_error(res, "no MLflow server answers", uri)
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(__import__("importlib").util.find_spec("mlflow") is None,
                    reason="needs the trackers extra")
def test_a_garbage_mlflow_store_is_named(synth_root, tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_text("this is not a database")
    res = cli(f"data.root={synth_root}", *TINY_RUN, "logger=mlflow",
              f"logger.mlflow.tracking_uri=sqlite:///{db}", f"paths.tracking_dir={tmp_path}",
              f"hydra.run.dir={tmp_path / 'r'}")
    assert_one_line_error(res, str(db), "not an SQLite database")


@pytest.mark.skipif(__import__("importlib").util.find_spec("mlflow") is None,
                    reason="needs the trackers extra")
def test_two_runs_create_one_mlflow_store_together(synth_root, tmp_path):
    db = tmp_path / "store" / "mlflow.db"
    procs = [subprocess.Popen([sys.executable, str(ROOT / "train.py"), f"data.root={synth_root}",
                               *TINY_RUN, "logger=mlflow",
                               f"logger.mlflow.tracking_uri=sqlite:///{db}",
                               f"paths.tracking_dir={tmp_path}",
                               f"hydra.run.dir={tmp_path / f'r{i}'}"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]


def test_an_export_never_replaces_an_earlier_one_silently(fold_runs, tmp_path):
    from maskcls.config import ExportSettings
    from maskcls.errors import ConfigError
    from maskcls.export.writer import export

    out = tmp_path / "m.pt"
    export(ExportSettings(ckpt=str(fold_runs / "0"), format="torchscript", output=str(out)))
    first = out.read_bytes()
    with pytest.raises(ConfigError, match="exists .*overwrite=true"):
        export(ExportSettings(ckpt=str(fold_runs / "1"), format="torchscript", output=str(out)))
    assert out.read_bytes() == first
    export(ExportSettings(ckpt=str(fold_runs / "1"),
                          format="torchscript",
                          output=str(out),
                          overwrite=True))
    assert out.read_bytes() != first
