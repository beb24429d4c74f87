"""Face boxes for every image of a data tree, found offline with detectors whose weights come
inside their packages (no download).

    python -m maskcls.faces /path/to/data            # writes /path/to/data/face_boxes.csv
    python -m maskcls.faces /path/to/data --out boxes.csv --workers 4 --detector haar

Per image, in order: the most certain face of the detector (``--detector mtcnn``, the default:
facenet-pytorch's MTCNN, a CNN cascade that still finds most faces under a mask; ``haar``:
OpenCV's frontal-face Haar cascade, faster, and blind to most masked faces); else a pair of
eyes (Haar's eye cascade; the face box is drawn around them); else the centre of the photo
(the competition's faces sit in the middle). ``python -m benchmarks.faces`` scores both.
``face_boxes.csv`` has one row per image: ``path`` (relative to the data root, e.g.
``train/images/<folder>/mask1.jpg``), ``x0, y0, x1, y1`` (pixels of the upright image) and
``source`` (``face``, ``eyes`` or ``centre``). Boxes from any other detector, in the same
format, work the same: train with ``data.face_boxes=<csv>``, and the checkpoint carries the
crop to ``predict.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from maskcls import atomic
from maskcls.data import catalog as cat
from maskcls.data.face_boxes import relative
from maskcls.data.parallel import pool_map
from maskcls.errors import one_line_errors
from maskcls.run.output_paths import check_output

COLUMNS = ["path", "x0", "y0", "x1", "y1", "source"]
SOURCES = ("face", "eyes", "centre")
DETECTORS = ("mtcnn", "haar")
# MTCNN's stage thresholds, a little below facenet-pytorch's (0.6, 0.7, 0.7): a mask takes
# away half the face, and a miss costs more than a rare false box (the eyes and centre follow).
MTCNN_THRESHOLDS = (0.6, 0.6, 0.6)
DETECT_SIDE = 320  # images are searched at this longer side (Haar cost grows with pixels)
CENTRE = (0.7, 0.6)  # fallback: the middle (height, width) fractions of the photo, a bit high
_cascades: dict[str, object] = {}
_mtcnn: list[object] = []  # one per process, built on first use


def _cascade(name: str):
    import cv2

    if name not in _cascades:
        path = Path(cv2.data.haarcascades) / name
        if not path.exists():  # opencv-python-headless 5.x ships no cascade files
            raise RuntimeError(f"{path} is missing: install opencv-python-headless<5, whose "
                               "wheels carry the Haar cascades")
        _cascades[name] = cv2.CascadeClassifier(str(path))
    return _cascades[name]


def _mtcnn_model():
    if not _mtcnn:
        import multiprocessing

        import torch
        from facenet_pytorch import MTCNN

        if multiprocessing.parent_process() is not None:  # a pool worker: one core each
            torch.set_num_threads(1)
        _mtcnn.append(MTCNN(keep_all=True, device="cpu", thresholds=list(MTCNN_THRESHOLDS)))
    return _mtcnn[0]


def _mtcnn_face(rgb: np.ndarray) -> tuple[float, float, float, float] | None:
    """The most probable face MTCNN finds in ``rgb`` (at least a sixth of the short side)."""
    import torch

    model = _mtcnn_model()
    model.min_face_size = max(12, min(rgb.shape[:2]) // 6)
    with torch.inference_mode():
        boxes, probs = model.detect(np.ascontiguousarray(rgb))
    if boxes is None:
        return None
    x0, y0, x1, y1 = np.asarray(boxes[int(np.argmax(probs))], dtype=float)
    return x0, y0, x1, y1


def _haar_face(grey: np.ndarray) -> tuple[float, float, float, float] | None:
    side = min(grey.shape)
    faces, _, weights = _cascade("haarcascade_frontalface_default.xml").detectMultiScale3(
        grey, scaleFactor=1.1, minNeighbors=5, minSize=(side // 6, side // 6),
        outputRejectLevels=True)
    if not len(faces):
        return None
    # the most certain detection (the largest may be a patterned background)
    x, y, fw, fh = faces[int(np.argmax(np.ravel(weights)))]
    return x, y, x + fw, y + fh


def detect(rgb: np.ndarray, detector: str = "mtcnn") -> tuple[tuple[int, int, int, int], str]:
    """``((x0, y0, x1, y1), source)`` of one ``(H, W, 3)`` uint8 image."""
    import cv2

    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(h, w))
    if scale < 1:
        rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    face = _mtcnn_face(rgb) if detector == "mtcnn" else _haar_face(grey)
    if face is not None:
        return _to_image(face, scale, w, h), "face"
    side = min(grey.shape)
    eyes = _cascade("haarcascade_eye.xml").detectMultiScale(
        grey, scaleFactor=1.1, minNeighbors=5, minSize=(side // 20, side // 20),
        maxSize=(side // 4, side // 4))
    pair = _eye_pair(eyes)
    if pair is not None:
        return _to_image(pair, scale, w, h), "eyes"
    return centre_box(w, h), "centre"


def centre_box(w: int, h: int) -> tuple[int, int, int, int]:
    """The fallback: the middle of the photo, a bit high (where the competition's faces sit)."""
    ch, cw = CENTRE
    return _to_image((w * (1 - cw) / 2, h * (1 - ch) / 3, w * (1 + cw) / 2,
                      h * (1 - ch) / 3 + h * ch), 1.0, w, h)


def _eye_pair(eyes: np.ndarray) -> tuple[float, float, float, float] | None:
    """The face around the two largest eyes at about the same height, side by side."""
    if len(eyes) < 2:
        return None
    ranked = sorted(eyes, key=lambda e: -e[2] * e[3])[:4]
    for i, a in enumerate(ranked):
        for b in ranked[i + 1:]:
            (ax, ay), (bx, by) = (a[:2] + a[2:] / 2), (b[:2] + b[2:] / 2)
            d = abs(ax - bx)
            if d > 0.8 * max(a[2], b[2]) and abs(ay - by) < 0.5 * d:
                cx, cy = (ax + bx) / 2, (ay + by) / 2
                # eyes sit about 40% down a face that is 2.2 eye distances wide, 3 tall
                return cx - 1.1 * d, cy - 1.2 * d, cx + 1.1 * d, cy + 1.8 * d
    return None


def _to_image(box: tuple[float, ...], scale: float, w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (v / scale for v in box)
    return (int(max(0, round(x0))), int(max(0, round(y0))), int(min(w, round(x1))),
            int(min(h, round(y1))))


def _detect_file(job: tuple[str, str]) -> tuple[tuple[int, int, int, int] | None, str, str | None]:
    """``(box, source, problem)``: an image that cannot be decoded falls back to the centre
    of the size its header gives (no box when even that is unreadable); one the detector
    cannot search (a 1x4000 strip) falls back to its centre. Neither stops the others."""
    path, detector = job
    try:
        from maskcls.data.dataset import read_rgb  # torch: here, so --help is instant

        rgb = read_rgb(path).permute(1, 2, 0).numpy()
    except Exception as e:  # noqa: BLE001 - any decoding failure: reported, not fatal
        problem = f"{relative(path)}: cannot be decoded ({str(e).splitlines()[0][:120]})"
        try:
            with Image.open(path) as im:
                return centre_box(*im.size), "centre", problem
        except Exception:  # noqa: BLE001 - not even a header: no box for it
            return None, "none", problem
    try:
        box, source = detect(rgb, detector)
    except Exception as e:  # noqa: BLE001 - a detector's own error for a shape it cannot search
        h, w = rgb.shape[:2]
        return centre_box(w, h), "centre", (f"{relative(path)}: not searched "
                                             f"({str(e).strip().splitlines()[-1][:120]})")
    return box, source, None


def image_paths(root: Path) -> list[str]:
    """Every training and eval image of the tree (absolute paths)."""
    paths = cat.scan_train(root)["path"].tolist()
    if (root / "eval" / "info.csv").exists():
        paths += cat.scan_eval(root)["path"].tolist()
    return paths


def write_boxes(root: str | os.PathLike, out: str | os.PathLike | None = None,
                workers: int | None = None, detector: str = "mtcnn", overwrite: bool = False
                ) -> tuple[Path, Counter, list[str]]:
    """Detect a box for every image under ``root``; returns the CSV, the count per source and
    the images that could not be searched (each on one line)."""
    root = Path(root).expanduser()
    out = Path(out).expanduser() if out else root / "face_boxes.csv"
    check_output(out, "--out", ".csv", data_roots=[root], overwrite=overwrite,
                 overwrite_flag="--overwrite (runs trained on the old boxes will refuse "
                 "the new ones)")
    if detector == "mtcnn" and importlib.util.find_spec("facenet_pytorch") is None:
        raise RuntimeError("--detector mtcnn needs facenet-pytorch: pip install "
                           "'facenet-pytorch>=2.5.3,<2.6' (or use --detector haar)")
    paths = image_paths(root)
    found = pool_map(_detect_file, [(p, detector) for p in paths], workers, min_items=64,
                     chunksize=32, desc="finding face boxes", spawn=detector == "mtcnn")
    table = pd.DataFrame([(relative(p), *box, src) for p, (box, src, _) in
                          zip(paths, found, strict=True) if box is not None], columns=COLUMNS)
    atomic.write_csv(table, out)
    return out, Counter(table["source"]), [problem for *_, problem in found if problem]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m maskcls.faces", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="data root holding train/ (and eval/)")
    p.add_argument("--out", default=None, help="CSV to write (default ROOT/face_boxes.csv)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file (default: refuse)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--detector", choices=DETECTORS, default="mtcnn",
                   help="face detector before the eyes and centre fallbacks (default mtcnn)")
    a = p.parse_args(argv)
    if a.workers is not None and a.workers < 1:
        p.error(f"--workers must be >= 1, got {a.workers}")
    t0 = time.perf_counter()
    with one_line_errors(RuntimeError):  # RuntimeError: a detector that cannot load
        out, counts, problems = write_boxes(a.root, a.out, a.workers, a.detector, a.overwrite)
    for problem in problems:
        print(f"warning: {problem}; centre crop used")
    n = sum(counts.values())
    shares = ", ".join(f"{s} {counts.get(s, 0)} ({counts.get(s, 0) / max(n, 1):.0%})"
                       for s in SOURCES)
    print(f"wrote {out}: {n} images in {time.perf_counter() - t0:.0f}s ({a.detector}); {shares}; "
          f"{counts.get('centre', 0)} fell back to the centre crop")


if __name__ == "__main__":
    main()
