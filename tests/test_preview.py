"""python -m maskcls.preview: the data as a run sees it, through the run's own code."""

import pandas as pd

from maskcls.data import catalog as cat
from maskcls.data.face_boxes import relative
from maskcls.preview import write


def test_preview_writes_classes_augmentation_and_boxes(synth_root, tmp_path, monkeypatch):
    from maskcls.data.batch_transforms import BatchTransform

    paths = [*cat.scan_train(synth_root)["path"], *cat.scan_eval(synth_root)["path"]]
    boxes = tmp_path / "boxes.csv"
    pd.DataFrame([(relative(p), 4, 6, 40, 56) for p in paths],
                 columns=["path", "x0", "y0", "x1", "y1"]).to_csv(boxes, index=False)
    calls = []
    real = BatchTransform.forward
    monkeypatch.setattr(BatchTransform, "forward",
                        lambda self, x: calls.append(self.cfg.rotation) or real(self, x))
    written = write([f"data.root={synth_root}", "data.synthetic=null", "augment=strong",
                     "data.center_crop=null", f"data.face_boxes={boxes}",
                     "data.image_size=[32,24]"], tmp_path,
                    per_class=2, variants=3)
    assert [p.name for p in written] == ["preview_classes.png", "preview_augment.png",
                                         "preview_face_boxes.png"]
    assert all(p.stat().st_size > 5_000 for p in written)
    assert sorted(calls) == [0, 15, 15, 15]  # evaluation once, augment=strong's three times


def test_the_command_creates_its_out_folder_and_refuses_a_file(synth_root, tmp_path):
    from conftest import cli

    base = [f"data.root={synth_root}", "data.synthetic=null", "data.image_size=[32,24]",
            "--per-class", "1", "--variants", "1"]
    out = tmp_path / "new" / "look"
    done = cli(*base, "--out", str(out), module="maskcls.preview")
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["preview_augment.png", "preview_classes.png"]
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    refused = cli(*base, "--out", str(a_file), module="maskcls.preview")
    assert refused.returncode == 2 and "is a file, not a folder" in refused.stderr
    assert a_file.read_text() == "mine"
    typo = cli(f"data.root={synth_root}", "data.imagesize=[32,24]", "--out",
               str(tmp_path / "typo"), module="maskcls.preview")
    assert typo.returncode == 1 and not (tmp_path / "typo").exists(), typo.stderr[-2000:]
