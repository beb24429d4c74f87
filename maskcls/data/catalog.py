"""Scan a competition data tree into pandas tables, one row per image, without decoding images.

Layout (the real competition's, which the synthetic generator copies)::

    <root>/train/train.csv                       id,gender,race,age,path
    <root>/train/images/<id>_<gender>_<race>_<age>/<stem>.<ext>
    <root>/eval/info.csv                         ImageID,ans
    <root>/eval/images/<ImageID>

Labels come from the **folder names**, as the competition's own baseline reads them.
``train.csv`` is only cross-checked: rows where it disagrees with its folder are reported
(``train_csv_disagreements``), never silently used.
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from maskcls import labels
from maskcls.errors import DataLayoutError, one_line_errors

__all__ = ["DataLayoutError", "scan_train", "scan_eval", "train_csv_disagreements", "summarise"]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png"}
SHOTS_PER_PERSON = labels.SHOTS_PER_PERSON
# <id>_<gender>_<race>_<age>; ids are 6 digits, some with a -1/-2 suffix (000600-1).
# Plain ASCII digits only: str.isdigit() and \d also accept "²" or Arabic-Indic digits.
FOLDER_RE = re.compile(
    r"^(?P<id>[0-9]+(?:-[0-9]+)?)_(?P<gender>[^_]+)_(?P<race>.+)_(?P<age>[^_]+)$")
ID_RE = re.compile(r"^[0-9]+(?:-[0-9]+)?$")
MAX_AGE = 120
TRAIN_COLUMNS = ["path", "folder", "person_id", "gender", "race", "age", "stem", "mask",
                 "age_group", "label"]


def _parse_folder(folder: str, images_dir: Path) -> tuple[str, str, str, int]:
    m = FOLDER_RE.match(folder)
    if m is None:
        raise DataLayoutError(
            f"{images_dir / folder}: folder name {folder!r} is not <id>_<gender>_<race>_<age> "
            "(e.g. 000001_female_Asian_45). Rename it, or move it out of train/images."
        )
    gender = m["gender"].lower()
    if gender not in labels.GENDER_CODES:
        raise DataLayoutError(
            f"{images_dir / folder}: unknown gender {m['gender']!r}; "
            f"expected one of {labels.GENDER_NAMES}."
        )
    age = _age(m["age"])
    if age is None:
        raise DataLayoutError(f"{images_dir / folder}: age {m['age']!r} is not a whole number "
                              f"of years in 0..{MAX_AGE}. Fix the folder name, or move it out "
                              "of train/images.")
    return m["id"], gender, m["race"], age


def _age(text: str) -> int | None:
    """Age in whole years from plain ASCII digits, or None if it is not one in 0..MAX_AGE."""
    text = str(text).strip()
    if not re.fullmatch(r"[0-9]{1,3}", text) or int(text) > MAX_AGE:
        return None
    return int(text)


def _read_table(path: Path, what: str, columns: Sequence[str]) -> pd.DataFrame:
    """A CSV with the given header, as strings; an empty file or a missing column is a
    ``DataLayoutError`` naming the file."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataLayoutError(f"{path} is empty; {what} needs the header "
                              f"{','.join(columns)} and one row per entry") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataLayoutError(f"{path} is not a readable CSV ({str(e).splitlines()[0][:200]})"
                              ) from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataLayoutError(f"{path}: no {', '.join(missing)} column (found "
                              f"{list(table.columns)}); expected the header {','.join(columns)}")
    return table


def _is_dir(entry: os.DirEntry) -> bool:
    """A folder, or a link to one; a broken or looping link is an error naming it."""
    try:
        if entry.is_symlink() and not os.path.exists(entry.path):
            os.stat(entry.path)  # raises the reason: missing target, or a loop
        return entry.is_dir()
    except OSError as e:
        raise DataLayoutError(f"{entry.path}: cannot be read ({e.strerror}); a broken or "
                              "looping link? Fix it, or move it out of train/images") from None


def _list(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError as e:
        raise DataLayoutError(f"{folder}: cannot be read ({e.strerror}); fix its permissions or "
                              "the link it is, or move it out of train/images") from None


def check_regular_files(paths: Sequence[str]) -> None:
    """Every image is a readable regular file: a FIFO would hang the first read forever, a
    device or a looping link never gives an image. One error naming the first such file."""
    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except OSError as e:
            raise DataLayoutError(f"{path}: cannot be read ({e.strerror}); a broken or looping "
                                  "link? Fix it, or move it out of the data tree") from None
        if not stat.S_ISREG(mode):
            raise DataLayoutError(f"{path} is not a regular file (a FIFO, socket or device); "
                                  "replace it with the image, or move it out of the data tree")


def _is_image(name: str) -> bool:
    """Image files we read; hidden files (macOS ``._*`` forks, ``.DS_Store``) and other junk
    are ignored."""
    if name.startswith("."):
        return False
    stem, ext = os.path.splitext(name)
    return ext.lower() in IMAGE_EXTENSIONS and stem in labels.MASK_BY_STEM


def has_train_images(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds a training tree (``<root>/train/images``): the one test of it."""
    return (Path(root) / "train" / "images").is_dir()


def scan_train(
    root: str | os.PathLike, age_bounds: Sequence[int] = labels.DEFAULT_AGE_BOUNDS
) -> pd.DataFrame:
    """One row per training image under ``<root>/train/images``, labels from folder names.

    Warns (does not fail) for a person with fewer than 7 shots. ``train.csv`` is not read
    here; ``train_csv_disagreements`` compares it with the folders.
    """
    root = Path(root)
    images_dir = root / "train" / "images"
    if not has_train_images(root):
        raise DataLayoutError(
            f"{images_dir} does not exist: expected the competition layout "
            "<root>/train/images/<id>_<gender>_<race>_<age>/<stem>.jpg. Check data.root, or "
            "generate a synthetic tree with `python -m maskcls.synth --out DIR`."
        )
    rows: list[tuple] = []
    short: list[str] = []
    with os.scandir(images_dir) as entries:
        folders = sorted(e.name for e in entries if not e.name.startswith(".") and _is_dir(e))
    for folder in folders:
        pid, gender, race, age = _parse_folder(folder, images_dir)
        person_dir = images_dir / folder
        names = sorted(n for n in _list(person_dir) if _is_image(n))
        stems = [os.path.splitext(n)[0] for n in names]
        if len(set(stems)) < SHOTS_PER_PERSON:
            short.append(f"{folder} ({len(set(stems))} of {SHOTS_PER_PERSON})")
        if len(set(stems)) != len(stems):
            warnings.warn(f"{person_dir}: the same shot is stored twice ({names}); both are used",
                          stacklevel=2)
        for name, stem in zip(names, stems, strict=True):
            rows.append((str(person_dir / name), folder, pid, gender, race, age, stem))
    if not rows:
        raise DataLayoutError(
            f"{images_dir} holds no images: expected folders <id>_<gender>_<race>_<age> with "
            f"{', '.join(labels.IMAGE_STEMS)} images (.jpg/.jpeg/.png)."
        )
    if short:
        warnings.warn(
            f"{len(short)} person folder(s) have missing shots and are loaded as they are: "
            + ", ".join(short[:10]) + (" ..." if len(short) > 10 else ""),
            stacklevel=2,
        )
    check_regular_files([r[0] for r in rows])
    df = pd.DataFrame.from_records(rows, columns=TRAIN_COLUMNS[:7])
    return add_labels(df, age_bounds)


def add_labels(df: pd.DataFrame, age_bounds: Sequence[int] = labels.DEFAULT_AGE_BOUNDS
               ) -> pd.DataFrame:
    """(Re)compute ``mask``, ``age_group`` and ``label`` from ``stem``, ``gender`` and ``age``."""
    df = df.copy()
    df["age"] = df["age"].astype(np.int64)
    df["mask"] = df["stem"].map(labels.MASK_BY_STEM).astype(np.int64)
    df["age_group"] = labels.age_group(df["age"].to_numpy(), age_bounds).astype(np.int64)
    df["label"] = labels.encode(
        df["mask"].to_numpy(), labels.gender_code(df["gender"]), df["age_group"].to_numpy()
    ).astype(np.int64)
    return df[TRAIN_COLUMNS]


def train_csv_disagreements(root: str | os.PathLike, catalog: pd.DataFrame) -> pd.DataFrame:
    """Places where ``train/train.csv`` and the folder names disagree.

    Rows are matched to folders by id (unpadded in the csv) and, for an id filed in several
    folders, by age. Both the csv's ``gender``/``age`` columns and the folder name in its
    ``path`` column are compared with the real folder. Columns of the result: ``folder``,
    ``field`` (``gender``, ``age``, ``missing_folder`` for a csv row without a folder,
    ``missing_row`` for a folder without a csv row), ``folder_value``, ``csv_value``.
    An absent ``train.csv`` gives an empty table.
    """
    csv_path = Path(root) / "train" / "train.csv"
    cols = ["folder", "field", "folder_value", "csv_value"]
    if not csv_path.exists():
        return pd.DataFrame(columns=cols)
    csv = _read_table(csv_path, "train/train.csv", ["id", "gender", "race", "age", "path"])
    bad = [(i + 2, v) for i, v in enumerate(csv["id"]) if not ID_RE.match(str(v).strip())]
    if bad:
        raise DataLayoutError(f"{csv_path}: id {bad[0][1]!r} on line {bad[0][0]} is not a plain "
                              f"decimal number ({len(bad)} such row(s)); ids look like 000123 "
                              "or 001498-1")
    people = catalog.drop_duplicates("folder")[["folder", "person_id", "gender", "age"]]
    people = people.assign(key=people["person_id"].map(_normalise_id),
                           age=people["age"].astype(str))
    csv = csv.assign(key=csv["id"].map(_normalise_id), row=range(len(csv)))
    m = csv.merge(people, on="key", suffixes=("_csv", ""))
    shared = m["key"].map(people["key"].value_counts()) > 1
    m = m[~shared | (m["age_csv"] == m["age"]) | (m["path"] == m["folder"])]
    out: list[tuple] = []
    for r in m.itertuples(index=False):
        path_match = FOLDER_RE.match(str(r.path))
        path_gender = path_match["gender"].lower() if path_match else r.gender
        path_age = path_match["age"] if path_match else r.age
        for field, folder_value, csv_values in (
            ("gender", r.gender, (str(r.gender_csv).lower(), path_gender)),
            ("age", r.age, (str(r.age_csv), path_age)),
        ):
            wrong = [v for v in csv_values if v != folder_value]
            if wrong:
                out.append((r.folder, field, folder_value, wrong[0]))
    for row in csv[~csv["row"].isin(m["row"])].itertuples(index=False):
        out.append((row.path, "missing_folder", None, row.path))
    for folder in sorted(set(people["folder"]) - set(m["folder"])):
        out.append((folder, "missing_row", folder, None))
    return pd.DataFrame.from_records(out, columns=cols)


def _normalise_id(raw: str) -> str:
    head, _, suffix = str(raw).strip().partition("-")
    return f"{int(head)}-{suffix}" if suffix else str(int(head))


def extra_rows(person_ids: Sequence[str], paths: Sequence[str], classes: np.ndarray,
               stem: str) -> pd.DataFrame:
    """Training-catalog rows of images that are not a person's shots (pseudo-labelled eval
    images, SMOTE images): each its own person and folder, labels from ``classes``."""
    mask, gender, age_group = labels.decode(np.asarray(classes, dtype=np.int64))
    return pd.DataFrame({"path": list(paths), "folder": list(person_ids),
                         "person_id": list(person_ids),
                         "gender": np.asarray(labels.GENDER_NAMES)[gender], "race": "",
                         "age": -1, "stem": stem, "mask": mask, "age_group": age_group,
                         "label": np.asarray(classes, dtype=np.int64)})


def scan_eval(root: str | os.PathLike) -> pd.DataFrame:
    """``eval/info.csv`` rows, in file order, with the absolute ``path`` of each image."""
    root = Path(root)
    info_path = root / "eval" / "info.csv"
    if not info_path.exists():
        raise DataLayoutError(
            f"{info_path} does not exist: the eval set needs eval/info.csv (ImageID,ans) "
            "beside eval/images/. Check data.root."
        )
    info = _read_table(info_path, "eval/info.csv", ["ImageID"])
    if info.empty:
        raise DataLayoutError(f"{info_path} lists no images (a header and no rows); the eval set "
                              "needs one row per image in eval/images")
    blank = np.flatnonzero(info["ImageID"].str.strip() == "")
    if len(blank):
        raise DataLayoutError(f"{info_path}: {len(blank)} row(s) with a blank ImageID (first on "
                              f"line {blank[0] + 2}); every row names an image file")
    dup = info["ImageID"][info["ImageID"].duplicated()].unique()
    if len(dup):
        raise DataLayoutError(f"{info_path}: {len(dup)} ImageID(s) listed more than once: "
                              + ", ".join(dup[:5]) + ". Each eval image is listed once.")
    images_dir = root / "eval" / "images"
    present = set(os.listdir(images_dir)) if images_dir.is_dir() else set()
    missing = [i for i in info["ImageID"] if i not in present]
    if missing:
        raise DataLayoutError(
            f"{len(missing)} image(s) named in {info_path} are missing from {images_dir}: "
            + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            + ". Restore them, or fix info.csv."
        )
    images_prefix = str(images_dir) + os.sep
    paths = images_prefix + info["ImageID"]
    check_regular_files(paths.tolist())
    return pd.DataFrame({"ImageID": info["ImageID"], "path": paths})


def summarise(root: str | os.PathLike,
              age_bounds: Sequence[int] = labels.DEFAULT_AGE_BOUNDS) -> str:
    """A human-readable summary of a data tree: counts per class and per task, and problems."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = scan_train(root, age_bounds)
    lines = [f"data root: {Path(root).resolve()}",
             f"train: {df['folder'].nunique()} people, {len(df)} images"]
    counts = df["label"].value_counts().reindex(range(labels.NUM_CLASSES), fill_value=0)
    lines.append("images per class:")
    lines += [f"  {c:2d} {labels.CLASS_NAMES[c]:<26} {n:6d}" for c, n in counts.items()]
    people = df.drop_duplicates("folder")
    for title, col, names, frame in (
        ("images per mask", "mask", labels.MASK_NAMES, df),
        ("people per gender", "gender", None, people),
        ("people per age group", "age_group", labels.AGE_GROUP_NAMES, people),
    ):
        vc = frame[col].value_counts().sort_index()
        parts = [f"{names[k] if names else k}={v}" for k, v in vc.items()]
        lines.append(f"{title}: " + ", ".join(parts))
    dis = train_csv_disagreements(root, df)
    if len(dis):
        lines.append(f"train.csv disagrees with the folder names in {len(dis)} place(s) "
                     "(labels are taken from folder names):")
        lines += ["  " + " ".join(f"{k}={v}" for k, v in r.items()) for r in
                  dis.to_dict("records")[:20]]
    else:
        lines.append("train.csv agrees with the folder names")
    for w in caught:
        lines.append(f"warning: {w.message}")
    try:
        ev = scan_eval(root)
        lines.append(f"eval: {len(ev)} images listed in eval/info.csv, all present")
    except DataLayoutError as e:
        lines.append(f"eval: {e}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m maskcls.data.catalog",
                                     description="Summarise a competition data tree.")
    parser.add_argument("root", help="data root holding train/ and eval/")
    parser.add_argument("--age-bounds", type=int, nargs=2, default=labels.DEFAULT_AGE_BOUNDS,
                        metavar=("LOW", "HIGH"),
                        help="first ages of the 30-59 and 60+ groups (default: %(default)s)")
    args = parser.parse_args(argv)
    with one_line_errors():
        print(summarise(args.root, args.age_bounds))


if __name__ == "__main__":
    main()
