"""Shared fixtures: tiny synthetic trees and a rebuild of the real competition file tree."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from maskcls.synth import SynthConfig, generate

REAL_META = Path(__file__).parent / "fixtures" / "real-meta"
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
