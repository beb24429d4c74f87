"""A synthetic twin of the competition data: same layout, quirks and class imbalance.

``python -m maskcls.synth --out DIR`` writes::

    DIR/train/images/<id>_<gender>_<race>_<age>/{mask1..mask5,incorrect_mask,normal}.<ext>
    DIR/train/train.csv          id,gender,race,age,path (ids unpadded, as in the real file)
    DIR/eval/images/<40-hex>.jpg
    DIR/eval/info.csv            ImageID,ans (ans all 0, as in the real file)
    DIR/eval/answers.csv         ImageID,ans with the true classes, for a local score
    DIR/true_face_boxes.csv      path,x0,y0,x1,y1,source: where each face was drawn
    DIR/truth.csv                per image, the variables its label shows through (not read
                                 by training; ``benchmarks.ceiling`` reads it)
    DIR/label_errors.csv         the people given a wrong label on purpose (--label-errors)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock

from maskcls import labels
from maskcls.data.catalog import has_train_images
from maskcls.data.parallel import pool_map
from maskcls.errors import ConfigError
from maskcls.synth import label_errors
from maskcls.synth.population import sample_people
from maskcls.synth.portraits import FEMALE_LIPS, PersonLook, render
from maskcls.synth.styles import Style

__all__ = ["SynthConfig", "generate", "ensure_synthetic"]
SETTINGS_FILE = "synthetic.json"  # the settings a tree was generated with, at its root
TRUE_BOXES_FILE = "true_face_boxes.csv"  # where every face was drawn, at the root
TRUTH_FILE = "truth.csv"  # the drawing variables of every image, at the root

# Share of real people whose shots are .png / .jpeg instead of .jpg.
EXTENSION_SHARES = {".jpg": 0.953, ".png": 0.027, ".jpeg": 0.017, "mixed": 0.003}
HIDDEN_FILE_SHARE = 0.05  # people with macOS "._*" fork files beside their images


@dataclass(frozen=True)
class SynthConfig:
    persons: int = 600
    eval_persons: int = 150
    seed: int = 0
    width: int = 384
    height: int = 512
    difficulty: float = 1.0
    framing: float = 0.0  # 0: studio shots; 1: backdrop, distance and position vary per shot
    label_errors: float = 0.0  # share of training people given a wrong label (label_errors.csv)
    style: int = 0  # 0: the default look; others: other outlines, backdrops and cameras
    age_overlap: float = 0.0  # 0: the 60+ look 62-82; 1: as young as the 55-59s (real data)

    def check(self) -> None:
        """Each setting in its range, named as the command line flag (and the config key)."""
        ranges = {"persons": (1, None), "eval_persons": (0, None), "seed": (0, 2**32 - 1),
                  "width": (16, 4096), "height": (16, 4096), "difficulty": (0, 3),
                  "framing": (0, 1), "label_errors": (0, 0.5), "style": (0, 10_000),
                  "age_overlap": (0, 1)}
        for key, (low, high) in ranges.items():
            value = getattr(self, key)
            kind = float if key in ("difficulty", "framing", "label_errors", "age_overlap") \
                else int
            ok = isinstance(value, int | float) and not isinstance(value, bool) and \
                (kind is float or float(value).is_integer()) and value >= low and \
                (high is None or value <= high)
            if not ok:
                span = f">= {low}" if high is None else f"in {low}..{high}"
                raise ConfigError(f"--{key.replace('_', '-')} (data.synthetic.{key}) must be "
                                  f"{span}, got {value!r}")


def _write_person(args: tuple) -> list[tuple[str, int, tuple[float, ...], dict]]:
    """Render one person's seven shots into ``folder``; returns (file name, class, face box,
    drawing variables) per shot."""
    person, folder, cfg, names, exts = args
    look = PersonLook(person, cfg.difficulty)
    rng = np.random.default_rng(person.seed + 1)
    style = Style.of(cfg.style)
    srng = np.random.default_rng([person.seed, 17, cfg.style])  # style draws: rng untouched
    g = labels.gender_code(person.gender)
    a = labels.age_group(person.age)
    out = []
    for stem, name, ext in zip(labels.IMAGE_STEMS, names, exts, strict=True):
        mask = labels.MASK_BY_STEM[stem]
        img, box, top = render(look, mask, rng, cfg.width, cfg.height, cfg.difficulty,
                               cfg.framing, style, srng)
        path = folder / f"{name}{ext}"
        if ext == ".png":
            img.save(path, compress_level=1)
        else:
            img.save(path, format="JPEG", quality=int(rng.integers(55, 96)))
        out.append((path.name, int(labels.encode(mask, g, a)), box,
                    truth_row(person, look, mask, top, cfg.style)))
    return out


def truth_row(person: Any, look: PersonLook, mask: int, top: float, style: int) -> dict:
    """What one shot shows: the true labels, and every variable a label is drawn through
    (the age cues are the values drawn, after their per-person noise). The mouth is hidden
    by a mask over it or below the nose (top edge above 0.25 face heights below the centre),
    the beard by any mask but one on the chin."""
    return {"gender": labels.gender_code(person.gender), "age": person.age,
            "apparent_age": round(person.apparent_age, 2), "mask": mask,
            "mask_top": round(top, 3), "mouth_visible": bool(mask == 2 or top > 0.25),
            "beard_visible": bool(mask == 2 or top > 0.3), "hair_cut": look.hair_cut,
            "beard": bool(look.beard), "lips_female": look.lips == FEMALE_LIPS,
            **{k: round(float(getattr(look, k)), 4)
               for k in ("grey", "white", "wrinkles", "eye_bags", "recede")},
            "style": style}


def _extensions(rng: np.random.Generator) -> list[str]:
    kind = rng.choice(list(EXTENSION_SHARES), p=list(EXTENSION_SHARES.values()))
    if kind == "mixed":
        return [".jpeg" if rng.random() < 0.5 else ".jpg" for _ in labels.IMAGE_STEMS]
    return [str(kind)] * len(labels.IMAGE_STEMS)


def _eval_name(seed: int, index: int) -> str:
    return hashlib.sha1(f"maskcls-eval-{seed}-{index}".encode()).hexdigest()


def generate(out: str | os.PathLike, cfg: SynthConfig = SynthConfig(),
             workers: int | None = None) -> Path:
    """Write a complete competition tree to ``out`` (which must not exist yet).

    The tree is built in a temporary sibling folder and renamed into place at the end, so an
    interrupted run never leaves a half-written tree behind. A lock beside ``out`` lets one
    process build while others asking for the same tree wait (``ensure_synthetic``).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(out):
        _build(out, cfg, workers)
    return out


def _build_lock(out: Path) -> FileLock:
    """An OS file lock (released by the kernel if its holder dies, so it never goes stale)."""
    return FileLock(out.parent / f".{out.name}.lock")


def _build(out: Path, cfg: SynthConfig, workers: int | None) -> None:
    """Build ``out``; the caller holds its lock."""
    cfg.check()
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose a new --out or delete it first")
    # Temporary folders of builders that died mid-way (only a lock holder creates them): ours
    # by name and by the marker inside; anything else beside the tree is never touched.
    for stale in out.parent.glob(f"{_tmp_prefix(out)}*"):
        if stale.is_dir() and not stale.is_symlink() and (stale / TMP_MARKER).is_file():
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(out), dir=out.parent))
    try:
        (tmp / TMP_MARKER).write_text("a maskcls.synth build in progress; removed if it died\n")
        _generate_into(tmp, cfg, workers)
        (tmp / TMP_MARKER).unlink()
        tmp.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would hide the tree from other users
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


TMP_MARKER = ".maskcls-synth-building"


def _tmp_prefix(out: Path) -> str:
    return f".{out.name}.maskcls-synth-tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _generate_into(root: Path, cfg: SynthConfig, workers: int | None) -> None:
    rng = np.random.default_rng(cfg.seed)
    train_people = sample_people(cfg.persons, rng, cfg.difficulty,
                                 age_overlap=cfg.age_overlap)
    eval_people = sample_people(cfg.eval_persons, rng, cfg.difficulty, first_id=900000,
                                id_quirks=False, age_overlap=cfg.age_overlap)
    images = root / "train" / "images"
    jobs, csv_rows = [], []
    wrong = label_errors.choose(train_people, cfg.label_errors, cfg.seed)
    for p in train_people:
        gender, age, stems = label_errors.given(p, wrong.get(p.person_id))
        folder_name = f"{p.person_id}_{gender}_{p.race}_{age}"
        folder = images / folder_name
        folder.mkdir(parents=True)
        jobs.append((p, folder, cfg, stems, _extensions(rng)))
        csv_id = p.person_id.lstrip("0") or "0"
        csv_rows.append((csv_id, gender, p.race, age, folder_name))
        if rng.random() < HIDDEN_FILE_SHARE:
            (folder / "._mask1.jpg").write_bytes(b"\x00\x05\x16\x07 hidden fork")
    (images / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    pd.DataFrame(csv_rows, columns=["id", "gender", "race", "age", "path"]).to_csv(
        root / "train" / "train.csv", index=False)

    eval_dir = root / "eval" / "images"
    eval_dir.mkdir(parents=True)
    names = iter(_eval_name(cfg.seed, i) for i in range(labels.SHOTS_PER_PERSON * cfg.eval_persons))
    for p in eval_people:
        jobs.append((p, eval_dir, cfg, [next(names) for _ in labels.IMAGE_STEMS],
                     [".jpg"] * len(labels.IMAGE_STEMS)))

    results = pool_map(_write_person, jobs, workers, desc="drawing people")

    _write_true_boxes(root, jobs, results)
    _write_truth(root, jobs, results, len(train_people))
    answers = [r[:2] for res in results[len(train_people):] for r in res]
    order = rng.permutation(len(answers))  # eval rows are shuffled, as in the real info.csv
    ans = pd.DataFrame([answers[i] for i in order], columns=["ImageID", "ans"])
    ans.to_csv(root / "eval" / "answers.csv", index=False)
    ans.assign(ans=0).to_csv(root / "eval" / "info.csv", index=False)
    if wrong:
        label_errors.write_truth(root, train_people, wrong)
    (root / SETTINGS_FILE).write_text(json.dumps(asdict(cfg), indent=2) + "\n")


def _write_truth(root: Path, jobs: list[tuple], results: list[list[tuple]], n_train: int
                 ) -> None:
    """``truth.csv``: one row per image (train and eval), its path, split, folder and the
    drawing variables of ``truth_row``."""
    rows = [{"path": str((folder / name).relative_to(root)),
             "split": "train" if i < n_train else "eval", "folder": folder.name, **drawn}
            for i, ((_, folder, *_), shots) in enumerate(zip(jobs, results, strict=True))
            for name, _, _, drawn in shots]
    pd.DataFrame(rows).to_csv(root / TRUTH_FILE, index=False)


def _write_true_boxes(root: Path, jobs: list[tuple], results: list[list[tuple]]) -> None:
    """Where each face was drawn, in the ``face_boxes.csv`` format (source ``drawn``): the
    truth that scores a face detector, and an oracle crop (``data.face_boxes=<it>``)."""
    rows = [(str((folder / name).relative_to(root)), *(round(v, 1) for v in box), "drawn")
            for (_, folder, *_), shots in zip(jobs, results, strict=True)
            for name, _, box, _ in shots]
    pd.DataFrame(rows, columns=["path", "x0", "y0", "x1", "y1", "source"]).to_csv(
        root / TRUE_BOXES_FILE, index=False)


def ensure_synthetic(root: str | os.PathLike, cfg: SynthConfig = SynthConfig()) -> bool:
    """Generate the synthetic tree at ``root`` unless it is already there. Returns True if it
    generated one. Safe when several processes ask at once (parallel sweep jobs, DDP ranks):
    one generates, the others wait for it and use its tree. A tree generated with other
    settings is refused, never silently used."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(root):
        if not has_train_images(root):
            _build(root, cfg, None)
            return True
    check_settings(root, cfg)
    return False


def check_settings(root: Path, cfg: SynthConfig) -> None:
    """The tree at ``root`` was generated with ``cfg`` (trees without a record are accepted)."""
    record = root / SETTINGS_FILE
    if not record.exists():
        return
    saved = json.loads(record.read_text())
    # a setting added after the tree was made has its default there
    recorded = {**asdict(SynthConfig()), **saved}
    differ = {k: (recorded.get(k), v) for k, v in asdict(cfg).items() if recorded.get(k) != v}
    if differ:
        asked = ", ".join(f"{k}={new}" for k, (_, new) in differ.items())
        have = ", ".join(f"{k}={old}" for k, (old, _) in differ.items())
        flags = " ".join(f"--{k.replace('_', '-')} {new}" for k, (_, new) in differ.items())
        raise ConfigError(
            f"data.root={root} holds a synthetic tree generated with {have}, but data.synthetic "
            f"asks for {asked}. Delete {root} to generate it anew, or generate a second tree "
            f"with `python -m maskcls.synth --out DIR {flags}` and train with data.root=DIR.")
