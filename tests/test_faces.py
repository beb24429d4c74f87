"""Face boxes: the bundled Haar cascades on a real photo, the CSV, and the crop they drive in
training and prediction."""

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_cfg
from PIL import Image

from maskcls.data.face_boxes import FaceBoxes, relative
from maskcls.data.pipeline import Pipeline
from maskcls.errors import DataLayoutError
from maskcls.faces import detect, write_boxes
from maskcls.inference import predict
from maskcls.training import train

skimage_data = pytest.importorskip("skimage.data")
# Where the astronaut's face is in scikit-image's 512x512 photo (x0, y0, x1, y1), by eye.
FACE = (170, 55, 280, 170)


def iou(a, b) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return w * h / (area - w * h)


def test_the_face_cascade_finds_the_astronauts_face():
    box, source = detect(skimage_data.astronaut())
    assert source == "face"
    assert iou(box, FACE) > 0.6, box


def test_with_a_mask_over_nose_and_mouth_the_eyes_place_the_box():
    photo = skimage_data.astronaut().copy()
    photo[125:200, 150:300] = (240, 240, 245)  # a white surgical mask
    box, source = detect(photo)
    assert source == "eyes"
    assert iou(box, FACE) > 0.5, box


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
    pipe = Pipeline((64, 64), face_boxes=str(csv), face_margin=0.0)
    crop = pipe.read(str(astronaut)).float()
    box = tuple(int(row[c]) for c in ("x0", "y0", "x1", "y1"))
    face = torch.from_numpy(np.array(Image.open(astronaut).convert("RGB").crop(box)
                                       .resize((64, 64), Image.BILINEAR))).permute(2, 0, 1)
    assert (crop - face.float()).abs().mean() < 12  # the same face, up to resampling
    whole = Pipeline((64, 64)).read(str(astronaut)).float()
    assert (whole - face.float()).abs().mean() > 30  # and not the whole photo


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
    res = predict(str(out), output=str(tmp_path / "sub.csv"))
    assert res["rows"] == 42
    # a box file that misses the eval images is refused before predicting
    moved = tmp_path / "train_only.csv"
    table = pd.read_csv(csv)
    table[table["path"].str.startswith("train/")].to_csv(moved, index=False)
    with pytest.raises(DataLayoutError, match="no box for 42 of 42 images"):
        predict(str(out), output=str(tmp_path / "sub2.csv"), face_boxes=str(moved))
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
