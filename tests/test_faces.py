"""Face boxes: the packaged detectors (MTCNN, Haar cascades) on a real photo, the generator's
true boxes, the CSV, and the crop they drive in training and prediction."""

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import cli, make_cfg
from PIL import Image

from maskcls.config import PredictSettings
from maskcls.data.face_boxes import FaceBoxes, relative
from maskcls.data.pipeline import Pipeline
from maskcls.errors import DataLayoutError
from maskcls.faces import detect, write_boxes
from maskcls.inference import predict
from maskcls.training.recipe import train

skimage_data = pytest.importorskip("skimage.data")
# Where the astronaut's face is in scikit-image's 512x512 photo (x0, y0, x1, y1), by eye.
FACE = (170, 55, 280, 170)


def iou(a, b) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return w * h / (area - w * h)


@pytest.mark.parametrize("detector", ["mtcnn", "haar"])
def test_each_detector_finds_the_astronauts_face(detector):
    box, source = detect(skimage_data.astronaut(), detector)
    assert source == "face"
    assert iou(box, FACE) > 0.6, box


def _masked_astronaut():
    photo = skimage_data.astronaut().copy()
    photo[125:200, 150:300] = (240, 240, 245)  # a white surgical mask
    return photo


def test_mtcnn_still_finds_the_face_under_a_mask():
    box, source = detect(_masked_astronaut())  # mtcnn is the default
    assert source == "face"
    assert iou(box, FACE) > 0.5, box


def test_with_a_mask_haar_misses_the_face_and_the_eyes_place_the_box():
    box, source = detect(_masked_astronaut(), "haar")
    assert source == "eyes"
    assert iou(box, FACE) > 0.5, box


def test_the_generator_records_where_it_drew_each_face(tmp_path):
    """true_face_boxes.csv: every image once, inside the photo, and where a detector finds the
    unmasked faces of a tree with varied framing (off-centre, nearer and further)."""
    from maskcls.data.dataset import read_rgb
    from maskcls.synth import TRUE_BOXES_FILE, SynthConfig, generate

    root = generate(tmp_path / "t", SynthConfig(persons=10, eval_persons=2, seed=4,
                                                framing=1.0), workers=1)
    table = pd.read_csv(root / TRUE_BOXES_FILE)
    assert len(table) == table["path"].nunique() == 12 * 7
    assert set(table["source"]) == {"drawn"} and (table["x1"] > table["x0"]).all()
    assert (table[["x0", "y0"]] >= 0).all().all() and (table["x1"] <= 384).all()
    assert all((root / p).is_file() for p in table["path"])
    bare = table[table["path"].str.endswith(("normal.jpg", "normal.jpeg", "normal.png"))]
    hits = [iou(detect(read_rgb(str(root / r.path)).permute(1, 2, 0).numpy())[0],
                (r.x0, r.y0, r.x1, r.y1)) > 0.5 for r in bare.itertuples()]
    assert len(hits) == 10 and sum(hits) >= 7, hits


def test_no_face_falls_back_to_the_centre():
    box, source = detect(np.full((512, 384, 3), 128, np.uint8))
    assert source == "centre"
    assert 0 < box[0] < 384 / 2 < box[2] <= 384


@pytest.fixture
def astronaut_tree(synth_copy):
    """The tiny tree with one person's mask1 and one eval image replaced by the astronaut."""
    photo = Image.fromarray(skimage_data.astronaut())
    folder = sorted((synth_copy / "train" / "images").glob("0*"))[0]
    target = next(folder.glob("mask1.*"))
    target.unlink()
    photo.save(folder / "mask1.jpg", quality=95)
    eval_image = pd.read_csv(synth_copy / "eval" / "info.csv")["ImageID"].iloc[0]
    photo.save(synth_copy / "eval" / "images" / eval_image, format="JPEG", quality=95)
    return synth_copy, folder / "mask1.jpg"


def test_write_boxes_covers_train_and_eval_and_crops_the_face(astronaut_tree):
    root, astronaut = astronaut_tree
    csv, counts, _ = write_boxes(root, workers=1)
    table = pd.read_csv(csv)
    assert list(table.columns) == ["path", "x0", "y0", "x1", "y1", "source"]
    assert sum(counts.values()) == len(table) == 40 * 7 + 6 * 7
    assert table["path"].str.startswith("eval/images/").sum() == 42
    row = table.set_index("path").loc[relative(str(astronaut))]
    assert row["source"] == "face"
    box = tuple(int(row[c]) for c in ("x0", "y0", "x1", "y1"))
    assert iou(box, FACE) > 0.6, box
    # a model input of the box's own shape: the crop is the box, pixel for pixel
    size = (box[3] - box[1], box[2] - box[0])
    pipe = Pipeline(size, face_boxes=str(csv), face_margin=0.0)
    crop = pipe.read(str(astronaut)).float()
    face = torch.from_numpy(np.array(Image.open(astronaut).convert("RGB").crop(box)))
    face = face.permute(2, 0, 1).float()
    assert (crop - face).abs().mean() < 3
    whole = Pipeline(size).read(str(astronaut)).float()
    assert (whole - face).abs().mean() > 30  # and not the whole photo


def test_boxes_from_another_detector_drive_training_and_prediction(synth_copy, tmp_path):
    root = synth_copy
    paths = [p for p in (root / "train" / "images").rglob("*") if p.suffix in
             (".jpg", ".jpeg", ".png") and not p.name.startswith("._")]
    paths += list((root / "eval" / "images").glob("*.jpg"))
    csv = tmp_path / "other.csv"  # a hand-made file: the top-left quarter of every image
    pd.DataFrame({"path": [relative(str(p)) for p in paths], "x0": 0, "y0": 0, "x1": 24,
                  "y1": 32}).to_csv(csv, index=False)
    out = tmp_path / "run"
    train(make_cfg(root, out, f"data.face_boxes={csv}", "data.face_margin=0"))
    state = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)["MaskDataModule"]
    assert state["face_boxes"] == str(csv) and state["face_margin"] == 0
    pipe = Pipeline.from_state(state)
    image = paths[0]
    want = Pipeline((32, 24)).resize(torch.from_numpy(np.array(
        Image.open(image).convert("RGB"))).permute(2, 0, 1)[:, :32, :24])
    assert torch.equal(pipe.read(str(image)), want)
    res = predict(PredictSettings(ckpt=str(out), output=str(tmp_path / "sub.csv")))
    assert res["rows"] == 42
    # a box file that misses the eval images is refused before predicting
    moved = tmp_path / "train_only.csv"
    table = pd.read_csv(csv)
    table[table["path"].str.startswith("train/")].to_csv(moved, index=False)
    with pytest.raises(DataLayoutError, match="no box for 42 of 42 images"):
        predict(PredictSettings(ckpt=str(out),
                                output=str(tmp_path / "sub2.csv"),
                                face_boxes=str(moved)))
    assert not (tmp_path / "sub2.csv").exists()


def test_face_box_files_are_checked(synth_copy, tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"path": ["train/images/x/mask1.jpg"], "x0": [5], "y0": [0], "x1": [5],
                  "y1": [9]}).to_csv(bad, index=False)
    with pytest.raises(DataLayoutError, match="without a box of finite pixels"):
        FaceBoxes(bad)
    pd.DataFrame({"path": ["a"], "left": [0]}).to_csv(bad, index=False)
    with pytest.raises(DataLayoutError, match="lacks column"):
        FaceBoxes(bad)
    with pytest.raises(DataLayoutError, match="no such file"):
        train(make_cfg(synth_copy, tmp_path / "a", f"data.face_boxes={tmp_path}/none.csv"))
    partial = tmp_path / "partial.csv"
    pd.DataFrame({"path": ["train/images/x/mask1.jpg"], "x0": [0], "y0": [0], "x1": [5],
                  "y1": [9]}).to_csv(partial, index=False)
    with pytest.raises(DataLayoutError, match="has no box for 280 of 280 images"):
        train(make_cfg(synth_copy, tmp_path / "b", f"data.face_boxes={partial}"))
    assert not (tmp_path / "b" / "metrics.json").exists()


def test_face_crops_get_their_own_cache_key(tmp_path):
    csv = tmp_path / "b.csv"
    pd.DataFrame({"path": ["train/images/x/mask1.jpg"], "x0": [0], "y0": [0], "x1": [5],
                  "y1": [9]}).to_csv(csv, index=False)
    plain, faces = Pipeline((32, 24)), Pipeline((32, 24), face_boxes=str(csv))
    assert plain.pixels_key != faces.pixels_key
    other = tmp_path / "c.csv"
    shutil.copy(csv, other)
    assert Pipeline((32, 24), face_boxes=str(other)).pixels_key == faces.pixels_key
    assert Pipeline((32, 24), face_boxes=str(csv), face_margin=0.5).pixels_key != \
        faces.pixels_key


def test_the_command_names_its_detector_and_haar_stays_behind_a_flag(synth_copy, tmp_path):


    out = tmp_path / "haar.csv"
    res = cli(str(synth_copy), "--out", str(out), "--detector", "haar", "--workers", "1",
              module="maskcls.faces")
    assert res.returncode == 0, res.stderr
    assert "(haar)" in res.stdout and len(pd.read_csv(out)) == 46 * 7
    res = cli(str(synth_copy), "--detector", "retina", module="maskcls.faces")
    assert res.returncode == 2 and "invalid choice: 'retina'" in res.stderr


def test_mtcnn_in_worker_processes_after_torch_ran_in_the_parent(synth_copy, tmp_path):
    """A forked worker of a process whose torch threads ran hangs in its first op: the pool
    of the MTCNN search starts fresh processes."""
    import subprocess
    import sys

    from conftest import ROOT

    out = tmp_path / "boxes.csv"
    code = ("import numpy as np; from maskcls.faces import detect, write_boxes; "
            "detect(np.full((200, 160, 3), 90, np.uint8)); "
            f"print(write_boxes({str(synth_copy)!r}, {str(out)!r}, workers=2)[1])")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert len(pd.read_csv(out)) == 46 * 7
