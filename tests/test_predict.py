"""predict.py: every kind of ckpt= input, TTA, probabilities, scores, and each error."""

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import cli, evil_checkpoint
from PIL import Image

from maskcls.config import PredictData, PredictSettings
from maskcls.data.catalog import DataLayoutError
from maskcls.errors import CheckpointError, ConfigError
from maskcls.inference import Source, predict
from maskcls.model.module import MaskClassifier
from maskcls.run import folder as rf
from maskcls.run.trained import find_checkpoints

ROOT = Path(__file__).parents[1]


def _check_submission(path: Path, data_root: Path) -> pd.DataFrame:
    sub = pd.read_csv(path)
    info = pd.read_csv(data_root / "eval" / "info.csv")
    assert list(sub.columns) == ["ImageID", "ans"]
    assert sub["ImageID"].tolist() == info["ImageID"].tolist()
    assert sub["ans"].between(0, 17).all()
    return sub


def test_run_folder_checkpoint_file_and_multirun(fold_runs, synth_root, tmp_path):
    run = fold_runs / "0"
    res = predict(PredictSettings(ckpt=str(run)))
    assert res["submission"] == run / "submission.csv" and res["members"] == 1
    a = _check_submission(run / "submission.csv", synth_root)
    assert set(res["score"]) == {"f1", "acc", "f1_mask", "f1_gender", "f1_age", "classes_scored"}
    out = tmp_path / "from_file.csv"
    predict(PredictSettings(ckpt=str(run / "checkpoints" / "best.ckpt"), output=str(out)))
    assert _check_submission(out, synth_root).equals(a)  # same model, same answer
    res = predict(PredictSettings(ckpt=str(fold_runs), save_probs=True))
    assert res["members"] == 2 and res["submission"] == fold_runs / "submission.csv"
    _check_submission(fold_runs / "submission.csv", synth_root)
    probs = pd.read_csv(res["probs"])
    p = probs[[f"prob_{c}" for c in range(18)]].to_numpy()
    assert np.allclose(p.sum(1), 1, atol=1e-4)
    assert len(res["member_scores"]) == 2


def test_ensemble_averages_member_probabilities(fold_runs, synth_root, tmp_path):
    members = []
    for job in ("0", "1"):
        res = predict(PredictSettings(ckpt=str(fold_runs / job),
                                      output=str(tmp_path / f"{job}.csv"),
                                      save_probs=True))
        members.append(pd.read_csv(res["probs"]).iloc[:, 1:].to_numpy())
    res = predict(PredictSettings(ckpt=str(fold_runs), output=str(tmp_path / "ens.csv")))
    ens = pd.read_csv(tmp_path / "ens.csv")
    assert (ens["ans"].to_numpy() == np.mean(members, axis=0).argmax(1)).all()
    assert res["score"]["f1"] >= min(m["f1"] for m in res["member_scores"]) - 1e-9


def test_tta_changes_probabilities_not_the_format(fold_runs, synth_root, tmp_path):
    def probs(ckpt: Path, name: str, **views) -> tuple[np.ndarray, float | None]:
        res = predict(PredictSettings(ckpt=str(ckpt), output=str(tmp_path / f"{name}.csv"),
                                      save_probs=True, **views))
        _check_submission(tmp_path / f"{name}.csv", synth_root)
        return pd.read_csv(res["probs"]).iloc[:, 1:].to_numpy(), res["tta_crop"]

    run = fold_runs / "0"
    (pa, _), (pb, _) = probs(run, "a", tta=False), probs(run, "b", tta=True, tta_crop=0)
    pc, crop = probs(run, "c", tta=True, tta_crop=0.9)
    assert crop == 0.9
    assert not np.allclose(pa, pb) and not np.allclose(pb, pc)
    assert np.allclose(pc.sum(1), 1, atol=1e-4)
    # unasked, the views the run trained on: this one trained without zoom or shift, so the
    # flip alone; a run that trained with zoom also gets the five crops, and tta=false none
    default, crop = probs(run, "d")
    assert crop is None and np.allclose(default, pb)
    zoomed = shutil.copytree(run, tmp_path / "zoomed")
    config = zoomed / rf.CONFIG
    assert "\naugment:\n" in config.read_text()  # the group, not data's copy of it
    head, group = config.read_text().split("\naugment:\n", 1)
    config.write_text(f"{head}\naugment:\n" + group.replace("\n  scale: 0.0\n",
                                                            "\n  scale: 0.1\n", 1))
    default, crop = probs(zoomed, "e")
    assert crop == rf.CROP_VIEWS and np.allclose(default, pc)
    single, crop = probs(zoomed, "f", tta=False)
    assert crop is None and np.allclose(single, pa)


def test_crop_views_are_the_corners_and_centre_resized_back() -> None:
    """tta_crop: the five crops of torchvision's five_crop, each back at the input size, and
    with tta every view mirrored too."""
    from maskcls.inference.scorers import views

    x = torch.zeros(2, 3, 20, 16, dtype=torch.uint8)
    x[..., 0, 0] = 255  # one bright pixel in the top-left corner
    assert len(views(x)) == 1 and len(views(x, tta=True)) == 2
    seen = views(x, crop=0.8)
    assert len(seen) == 6 and all(v.shape == x.shape and v.dtype == torch.uint8 for v in seen)
    # the image itself and the top-left crop hold the pixel; the other corners and the
    # centre do not
    assert [bool(v.max() > 0) for v in seen] == [True, True, False, False, False, False]
    mirrored = views(x, tta=True, crop=0.8)
    assert len(mirrored) == 12
    assert all(torch.equal(m, v.flip(-1)) for m, v in zip(mirrored[6:], seen, strict=True))


def test_real_eval_set_gives_12600_rows(fold_runs, real_tree, tmp_path):
    data = tmp_path / "real"
    (data / "eval" / "images").mkdir(parents=True)
    info = pd.read_csv(real_tree / "eval" / "info.csv")
    info.to_csv(data / "eval" / "info.csv", index=False)
    Image.new("RGB", (12, 16), (120, 100, 90)).save(tmp_path / "tiny.jpg")
    tiny = (tmp_path / "tiny.jpg").read_bytes()
    for image_id in info["ImageID"]:
        (data / "eval" / "images" / image_id).write_bytes(tiny)
    res = predict(PredictSettings(ckpt=str(fold_runs / "0"),
                                  data=PredictData(str(data)),
                                  output=str(tmp_path / "s.csv"),
                                  batch_size=512))
    assert res["rows"] == 12600 and "score" not in res
    _check_submission(tmp_path / "s.csv", data)


def test_predict_py_command_line(fold_runs, tmp_path):
    out = tmp_path / "cli.csv"
    res = cli(f"ckpt={fold_runs}", f"output={out}", "tta=true", "tta_crop=0.9",
              script="predict.py")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "members' macro-F1" in res.stdout and "ensemble" in res.stdout
    assert "tta, five 0.9 crops" in res.stdout
    assert out.exists()
    assert not (ROOT / "outputs" / ".hydra").exists()
    bad = cli(f"ckpt={tmp_path / 'nope'}", script="predict.py")
    assert bad.returncode == 1
    assert "error: ckpt=" in bad.stderr and "Traceback" not in bad.stderr
    bad = cli(f"ckpt={fold_runs}", "tta_crop=1", f"output={tmp_path / 'no.csv'}",
              script="predict.py")
    assert bad.returncode == 1 and "error: tta_crop must be in [0, 1), got 1" in bad.stderr
    assert not (tmp_path / "no.csv").exists()


def test_missing_and_foreign_checkpoints(fold_runs, tmp_path):
    with pytest.raises(CheckpointError, match="no such file or folder"):
        find_checkpoints(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoints/best.ckpt"):
        find_checkpoints(tmp_path / "empty")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.ckpt: not a loadable checkpoint"):
        predict(PredictSettings(ckpt=str(junk),
                                data=PredictData(str(fold_runs.parent)),
                                output=str(tmp_path / "x.csv")))


def test_other_class_count_is_refused_before_any_work(fold_runs, synth_root, tmp_path):
    ckpt = torch.load(fold_runs / "0" / "checkpoints" / "best.ckpt", weights_only=True)
    sd = ckpt["state_dict"]
    sd["heads.age.weight"] = sd["heads.age.weight"][:2]  # a per-task head of another task
    sd["heads.age.bias"] = sd["heads.age.bias"][:2]
    path = tmp_path / "two.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="weights do not fit a resnet18 with a multi head"):
        predict(PredictSettings(ckpt=str(path),
                                data=PredictData(str(synth_root)),
                                output=str(tmp_path / "x.csv")))
    single = MaskClassifier(head="single")  # and an 18-way head cut to 10 classes
    ckpt["hyper_parameters"]["head"] = "single"
    ckpt["state_dict"] = single.state_dict()
    ckpt["state_dict"]["net.fc.weight"] = ckpt["state_dict"]["net.fc.weight"][:10]
    ckpt["state_dict"]["net.fc.bias"] = ckpt["state_dict"]["net.fc.bias"][:10]
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="predicts 10 classes, the competition has 18"):
        predict(PredictSettings(ckpt=str(path),
                                data=PredictData(str(synth_root)),
                                output=str(tmp_path / "x.csv")))
    assert not (tmp_path / "x.csv").exists()


def test_malicious_pickle_is_refused_without_running(fold_runs, synth_root, tmp_path):
    path, marker = evil_checkpoint(fold_runs / "0" / "checkpoints" / "best.ckpt", tmp_path)
    assert zipfile.is_zipfile(path)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        predict(PredictSettings(ckpt=str(path),
                                data=PredictData(str(synth_root)),
                                output=str(tmp_path / "x.csv")))
    assert not marker.exists()


def test_data_errors_stop_before_work(fold_runs, synth_copy, tmp_path):
    info = synth_copy / "eval" / "info.csv"
    first = pd.read_csv(info)["ImageID"][0]
    (synth_copy / "eval" / "images" / first).unlink()
    with pytest.raises(DataLayoutError, match=first):
        predict(PredictSettings(ckpt=str(fold_runs / "0"),
                                data=PredictData(str(synth_copy)),
                                output=str(tmp_path / "x.csv")))
    info.unlink()
    with pytest.raises(DataLayoutError, match="info.csv does not exist"):
        predict(PredictSettings(ckpt=str(fold_runs / "0"),
                                data=PredictData(str(synth_copy)),
                                output=str(tmp_path / "x.csv")))
    with pytest.raises(ConfigError, match="does not exist; create it"):
        predict(PredictSettings(ckpt=str(fold_runs / "0"), output=str(tmp_path / "no" / "x.csv")))
    assert not list(tmp_path.glob("**/x.csv"))


def test_fold_ensemble_decodes_each_eval_image_once(fold_runs, synth_root, monkeypatch):
    from maskcls.data import pipeline
    from maskcls.inference import predict_probs

    members = Source.resolve(str(fold_runs), None, False).scorers(None, "cpu")
    alone = [predict_probs([m], synth_root, num_workers=0)[1][0] for m in members]
    reads = []
    real_read = pipeline.read_rgb
    monkeypatch.setattr(pipeline, "read_rgb", lambda path, *a: reads.append(path) or
                        real_read(path, *a))
    eval_df, together = predict_probs(members, synth_root, num_workers=0)
    assert len(members) == 2 and sorted(reads) == sorted(eval_df["path"])  # one pass for both
    for a, b in zip(alone, together, strict=True):  # each member keeps its own probabilities
        assert np.allclose(a, b, atol=1e-5)
    assert not np.allclose(together[0], together[1])


def test_a_submission_is_never_replaced_silently(fold_runs, tmp_path):
    out = tmp_path / "sub.csv"
    predict(PredictSettings(ckpt=str(fold_runs / "0"), output=str(out)))
    first = out.read_bytes()
    with pytest.raises(ConfigError, match="exists .*overwrite=true"):
        predict(PredictSettings(ckpt=str(fold_runs / "1"), output=str(out)))
    assert out.read_bytes() == first
    predict(PredictSettings(ckpt=str(fold_runs / "1"), output=str(out), overwrite=True))
    assert out.read_bytes() != first


def test_any_runs_are_ensembled_and_named(fold_runs, tmp_path):
    runs = [str(fold_runs / "0"), str(fold_runs / "1")]
    with pytest.raises(ConfigError, match="give output="):
        predict(PredictSettings(ckpt=runs))
    res = predict(PredictSettings(ckpt=runs, output=str(tmp_path / "ens.csv")))
    assert res["members"] == 2 and res["member_names"] == runs
    same = predict(PredictSettings(ckpt=str(fold_runs), output=str(tmp_path / "sweep.csv")))
    assert (tmp_path / "ens.csv").read_bytes() == (tmp_path / "sweep.csv").read_bytes()
    assert same["score"] == res["score"]
