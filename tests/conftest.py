"""Shared fixtures: tiny synthetic trees and a rebuild of the real competition file tree."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir

from maskcls.synth import SynthConfig, generate

# Under pytest-xdist (`make test` runs one worker per core) each worker and the runs it starts
# use one thread, so workers do not fight over the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)

REAL_META = Path(__file__).parent / "fixtures" / "real-meta"
CONF = Path(__file__).parents[1] / "conf"
TINY = SynthConfig(persons=40, eval_persons=6, seed=1, width=48, height=64)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic tree (40 train people, 6 eval people, 48x64 images). Read-only."""
    return generate(tmp_path_factory.mktemp("synth") / "data", TINY, workers=1)


@pytest.fixture
def synth_copy(synth_root: Path, tmp_path: Path) -> Path:
    """A private copy of the small tree that a test may damage."""
    dst = tmp_path / "data"
    shutil.copytree(synth_root, dst)
    return dst


def build_real_tree(root: Path) -> Path:
    """The real competition file tree, with empty image files, from its published metadata,
    plus the junk the original archive carried (``._*`` forks, ``.DS_Store``)."""
    files = (REAL_META / "train_image_files.txt").read_text().split()
    folders = {f.rsplit("/", 1)[0] for f in files}
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
    for f in files:
        (root / f).touch()
        if f.endswith("/mask1.jpg"):
            (root / f).with_name("._mask1.jpg").touch()
    (root / "train" / "images" / ".DS_Store").touch()
    (root / "train" / "images" / "._000001_female_Asian_45").touch()
    shutil.copy(REAL_META / "train.csv", root / "train" / "train.csv")
    (root / "eval" / "images").mkdir(parents=True)
    shutil.copy(REAL_META / "info.csv", root / "eval" / "info.csv")
    for image_id in pd.read_csv(REAL_META / "info.csv")["ImageID"]:
        (root / "eval" / "images" / image_id).touch()
    return root


@pytest.fixture(scope="session")
def real_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_real_tree(tmp_path_factory.mktemp("real"))


def make_cfg(synth_root: Path, out: Path, *overrides: str):
    """The training config for a tiny, fast run on ``synth_root`` writing into ``out``."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=[
            f"data.root={synth_root}", "data.synthetic=null", f"paths.output_dir={out}",
            "data.image_size=[32,24]", "data.batch_size=16", "trainer.max_epochs=1",
            "trainer.accelerator=cpu", "callbacks.progress_bar.refresh_rate=0", *overrides])


@pytest.fixture(scope="session")
def fold_runs(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-fold 'multirun' folder: jobs 0 and 1, each a finished run (2 epochs)."""
    from maskcls.training.recipe import train

    multi = tmp_path_factory.mktemp("multirun")
    for fold in (0, 1):
        train(make_cfg(synth_root, multi / str(fold), "data.n_folds=2", f"data.fold={fold}",
                       "trainer.max_epochs=2"))
    return multi


class _Payload:
    """Unpickling this touches ``marker``: the proof that a checkpoint ran code."""

    marker = ""

    def __reduce__(self):
        return (Path.touch, (Path(_Payload.marker),))


def evil_checkpoint(source: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of checkpoint ``source`` with a pickled payload; returns (checkpoint, marker)."""
    marker = tmp_path / "pwned"
    _Payload.marker = str(marker)
    ckpt = torch.load(source, weights_only=True)
    ckpt["hyper_parameters"]["evil"] = _Payload()
    path = tmp_path / "evil.ckpt"
    torch.save(ckpt, path, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    return path, marker


ROOT = Path(__file__).parents[1]
TINY_RUN = ["data.synthetic=null", "data.image_size=[32,24]", "data.batch_size=16",
            "trainer.max_epochs=1", "trainer.accelerator=cpu",
            "callbacks.progress_bar.refresh_rate=0"]


def cli(*args: str, cwd: Path = ROOT, script: str = "train.py", module: str | None = None,
        fresh: bool = False) -> subprocess.CompletedProcess:
    """``python <script> args`` (or ``python -m <module> args``) as a user runs it: its exit
    code, stdout and stderr. Run in a fork of this test process, which has torch and Lightning
    imported already (5-6 s a command saved); ``fresh=True`` starts a new interpreter, for
    tests of what happens at import. Forking is safe only while torch runs one thread (as
    under pytest-xdist): a child of a process whose OpenMP pool is up can hang on its locks."""
    argv = ["-m", module, *args] if module else [str(ROOT / script), *args]
    if fresh or not hasattr(os, "fork") or torch.get_num_threads() != 1:
        return subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True,
                              timeout=600)
    return _forked(argv, cwd)


def _forked(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    import gc
    import runpy
    import tempfile
    import threading
    import time
    import traceback

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:  # the command, in the child: never returns into pytest
            # The test process's uncollected garbage (a DataLoader iterator an earlier test's
            # error left in a reference cycle) would be collected here, in a process that does
            # not own its workers, and print their shutdown's tracebacks into the command's
            # stderr: the child never collects what it inherited.
            gc.freeze()
            # a user's process reports what goes wrong in a __del__ or a thread on stderr;
            # pytest's hooks would keep it from the command's output
            sys.unraisablehook, threading.excepthook = sys.__unraisablehook__, \
                threading.__excepthook__
            code = 1
            try:
                os.chdir(cwd)
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
                sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
                sys.__stdout__, sys.__stderr__ = sys.stdout, sys.stderr
                import logging

                from hydra.core.global_hydra import GlobalHydra

                import maskcls.run

                GlobalHydra.instance().clear()
                logging.getLogger().handlers.clear()  # pytest's capture handlers
                maskcls.run.STARTED = time.time() - 1.0  # what importing the entry point notes
                sys.argv = argv[1:] if argv[0] == "-m" else list(argv)
                if argv[0] == "-m":
                    sys.argv[0] = argv[1]
                    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
                else:
                    runpy.run_path(argv[0], run_name="__main__")
                code = 0
            except SystemExit as e:
                if e.code is None or isinstance(e.code, int):
                    code = e.code or 0
                else:
                    print(e.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            [sys.executable, *argv], os.waitstatus_to_exitcode(status),
            out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def assert_one_line_error(res: subprocess.CompletedProcess, *needles: str) -> str:
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-3000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), res.stderr[-2000:]
    for needle in needles:
        assert needle in last, last
    return last
