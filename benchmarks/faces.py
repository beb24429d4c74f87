"""Face detectors of ``python -m maskcls.faces`` scored against true boxes, with and without masks.

    python -m benchmarks.faces                      # ~2 min on a 2-core CPU
    python -m benchmarks.faces --persons 80 --seed 5

Photos with a known face box: scikit-image's astronaut (its face box marked by eye), the 100
faces of scikit-image's ``lfw_subset`` (25x25 crops, upscaled 6x and pasted at a random place on
a noisy 240x320 backdrop: the pasted square is the box), each also with a mask drawn over the
lower face; and a synthetic tree with varied framing, whose ``true_face_boxes.csv`` says where
each face was drawn, split by mask state. For each detector (``--detector`` of
``maskcls.faces``): the share of photos where the detector itself found a face, the share whose
final box (face, else eyes, else centre) overlaps the truth by IoU >= 0.5, the mean IoU, and the
milliseconds per photo (one process, one thread).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from benchmarks import markdown_table, publish

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT_FACE = (170, 55, 280, 170)  # x0, y0, x1, y1 in skimage's 512x512 photo, by eye
MASK_COLOUR = (170, 205, 235)
Box = tuple[float, float, float, float]


def iou(a: Box, b: Box) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def with_mask(rgb: np.ndarray, face: Box) -> np.ndarray:
    """A surgical mask over nose, mouth and chin of ``face``."""
    img = Image.fromarray(rgb)
    x0, y0, x1, y1 = face
    w, h = x1 - x0, y1 - y0
    ImageDraw.Draw(img).rounded_rectangle(
        [x0 + 0.08 * w, y0 + 0.52 * h, x1 - 0.08 * w, y1 + 0.05 * h], radius=int(0.12 * w),
        fill=MASK_COLOUR)
    return np.asarray(img)


def photo_sets(rng: np.random.Generator) -> Iterator[tuple[str, np.ndarray, Box]]:
    """``(set name, RGB photo, true box)`` for the astronaut and the LFW faces, bare and masked."""
    from skimage import data

    astronaut = data.astronaut()
    yield "astronaut", astronaut, ASTRONAUT_FACE
    yield "astronaut + mask", with_mask(astronaut, ASTRONAUT_FACE), ASTRONAUT_FACE
    side, width, height = 150, 240, 320
    for grey in data.lfw_subset()[:100]:  # the first 100 are faces, the rest are not
        face = Image.fromarray((grey * 255).astype(np.uint8)).resize((side, side),
                                                                     Image.BICUBIC)
        backdrop = rng.normal(rng.uniform(60, 200, 3), 25, (height, width, 3))
        canvas = Image.fromarray(backdrop.clip(0, 255).astype(np.uint8))
        x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
        canvas.paste(face.convert("RGB"), (x, y))
        box = (x, y, x + side, y + side)
        rgb = np.asarray(canvas)
        yield "LFW faces", rgb, box
        yield "LFW faces + mask", with_mask(rgb, box), box


def synthetic_sets(root: Path) -> Iterator[tuple[str, np.ndarray, Box]]:
    """Every training photo of the tree at ``root`` with its drawn box, by mask state."""
    from maskcls.data.dataset import read_rgb
    from maskcls.synth import TRUE_BOXES_FILE

    names = {"mask": "worn", "incorrect_mask": "incorrect", "normal": "none"}
    table = pd.read_csv(root / TRUE_BOXES_FILE)
    for r in table[table["path"].str.startswith("train/")].itertuples(index=False):
        stem = Path(r.path).stem.rstrip("0123456789")
        rgb = read_rgb(str(root / r.path)).permute(1, 2, 0).numpy()
        yield f"synthetic, mask {names[stem]}", rgb, (r.x0, r.y0, r.x1, r.y1)


def score(sets: Iterator[tuple[str, np.ndarray, Box]], detectors: list[str]) -> pd.DataFrame:
    import torch

    from maskcls.faces import detect

    torch.set_num_threads(1)
    rows = []
    for name, rgb, truth in sets:
        for det in detectors:
            t0 = time.perf_counter()
            box, source = detect(rgb, det)
            rows.append((name, det, source == "face", iou(box, truth),
                         1000 * (time.perf_counter() - t0)))
    return pd.DataFrame(rows, columns=["set", "detector", "found", "iou", "ms"])


def table(scores: pd.DataFrame, title: str) -> str:
    order = list(dict.fromkeys(scores["set"]))
    rows = []
    for (name, det), g in sorted(scores.groupby(["set", "detector"]),
                                 key=lambda kv: (order.index(kv[0][0]), kv[0][1])):
        rows.append([name, det, str(len(g)), f"{g['found'].mean():.2f}",
                     f"{(g['iou'] >= 0.5).mean():.2f}", f"{g['iou'].mean():.2f}",
                     f"{g['ms'].median():.0f}"])
    return markdown_table(title, ["photos", "detector", "n", "detector found a face",
                                  "box IoU >= 0.5", "mean IoU", "ms / photo"], rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(prog="python -m benchmarks.faces", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--persons", type=int, default=40, help="people of the synthetic tree")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--framing", type=float, default=1.0)
    p.add_argument("--detectors", default="haar,mtcnn")
    p.add_argument("--work", default=str(ROOT / "outputs" / "bench_faces"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "faces.md"))
    a = p.parse_args(argv)
    from maskcls.synth import SynthConfig, generate

    root = Path(a.work) / f"tree-s{a.seed}-f{a.framing}-p{a.persons}"
    if not root.is_dir():
        generate(root, SynthConfig(persons=a.persons, eval_persons=1, seed=a.seed,
                                   framing=a.framing))
    rng = np.random.default_rng(a.seed)
    detectors = a.detectors.split(",")
    scores = pd.concat([score(photo_sets(rng), detectors),
                        score(synthetic_sets(root), detectors)], ignore_index=True)
    title = (f"Face detectors against true boxes: scikit-image photos (bare and with a drawn "
             f"mask) and a synthetic tree ({a.persons} people, framing {a.framing}, seed "
             f"{a.seed}); 'box' is the final box of the chain (face, else eyes, else centre); "
             f"one thread")
    publish(table(scores, title), a.out)
    return scores


if __name__ == "__main__":
    main()
