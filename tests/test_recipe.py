"""The competition recipe's options: per-task heads, mixup / cutmix, zoom and shift, EMA,
local pretrained weights and decision tuning for macro-F1."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from conftest import CONF, make_cfg

from maskcls import labels
from maskcls.config import PredictSettings
from maskcls.data.batch_transforms import BatchTransform
from maskcls.data.mixing import MixBatch
from maskcls.data.transforms import AugmentConfig
from maskcls.errors import ConfigError
from maskcls.inference import calibration, predict
from maskcls.model.losses import CrossEntropy, FocalLoss, SoftF1Loss, TaskLoss
from maskcls.model.metrics import score
from maskcls.model.module import (
    AGE_CENTRE,
    AGE_SCALE,
    AGE_YEARS,
    MaskClassifier,
    age_regression_loss,
)
from maskcls.training.recipe import train


# ------------------------------------------------------------------------------ heads
def test_joint_probabilities_sum_to_one_and_decode_to_the_task_argmaxes():
    torch.manual_seed(0)
    m, g, a = (torch.randn(64, n).log_softmax(1) for n in labels.TASK_SHAPE)
    joint = labels.joint_log_probs(m, g, a)
    assert torch.allclose(joint.exp().sum(1), torch.ones(64), atol=1e-5)
    mask, gender, age = labels.decode(joint.argmax(1))
    assert torch.equal(mask, m.argmax(1)) and torch.equal(gender, g.argmax(1))
    assert torch.equal(age, a.argmax(1))
    # and the marginals of the joint are the tasks' own probabilities
    for got, want in zip(labels.task_marginals(joint.exp()), (m, g, a), strict=True):
        assert torch.allclose(got, want.exp(), atol=1e-5)


def test_the_multi_head_model_gives_18_class_scores_from_three_heads():
    model = MaskClassifier(head="multi").eval()
    with torch.no_grad():
        x = torch.randn(4, 3, 64, 48)
        out = model.outputs(x)
        scores = model(x)
    assert {k: v.shape[1] for k, v in out.items()} == {"mask": 3, "gender": 2, "age": 3}
    assert scores.shape == (4, 18)
    assert torch.allclose(scores.softmax(1).sum(1), torch.ones(4), atol=1e-5)
    mask, gender, age = labels.decode(scores.argmax(1))
    assert torch.equal(mask, out["mask"].argmax(1)) and torch.equal(age, out["age"].argmax(1))
    assert torch.equal(gender, out["gender"].argmax(1))
    with pytest.raises(ConfigError, match="model.head must be one of"):
        MaskClassifier(head="three")


def test_the_age_regression_head_adds_a_loss_and_leaves_the_class_scores_to_the_task_heads():
    torch.manual_seed(0)
    model = MaskClassifier(head="multi", age_regression=2.0,
                           loss=TaskLoss(CrossEntropy)).eval()
    x = torch.randn(4, 3, 64, 48)
    with torch.no_grad():
        out = model.outputs(x)
        plain = MaskClassifier.scores({t: out[t] for t in labels.TASKS})
        assert out[AGE_YEARS].shape == (4,)
        assert torch.equal(model(x), plain)  # predictions ignore the regression head
    ages = torch.tensor([18.0, 60.0, float("nan"), 45.0])
    pred = torch.zeros(4, requires_grad=True)
    want = torch.nn.functional.smooth_l1_loss(
        pred.detach()[[0, 1, 3]], (ages[[0, 1, 3]] - AGE_CENTRE) / AGE_SCALE)
    assert torch.isclose(age_regression_loss(pred, ages), want)  # the NaN (no age) is left out
    none = age_regression_loss(pred, torch.full((4,), float("nan")))
    none.backward()
    assert float(none.detach()) == 0.0 and torch.equal(pred.grad, torch.zeros(4))
    model.train()
    batch = (x, torch.tensor([0, 5, 11, 17]), torch.arange(4), ages)
    plain_loss = model.criterion({t: model.outputs(x)[t] for t in labels.TASKS}, batch[1])
    with torch.no_grad():
        age_part = age_regression_loss(model.outputs(x)[AGE_YEARS], ages)
    model.log = lambda *a, **k: None  # no trainer to log to
    assert torch.isclose(model.training_step(batch, 0), plain_loss + 2.0 * age_part, atol=1e-5)
    with pytest.raises(ConfigError, match="recorded ages"):
        model.training_step(batch[:3], 0)
    with pytest.raises(ConfigError, match="model.age_regression=1.0 needs model.head=multi"):
        MaskClassifier(head="single", age_regression=1.0)
    with pytest.raises(ConfigError, match="model.age_regression"):
        MaskClassifier(head="multi", age_regression=-1.0)
    assert MaskClassifier(head="multi").age_head is None  # off by default: same weights as before


def test_training_batches_carry_each_images_recorded_age(synth_root, tmp_path):
    from maskcls.training.recipe import build, check_config

    dm, _ = build(make_cfg(synth_root, tmp_path / "run", "data.smote=true"))
    real = ~dm.catalog["person_id"].str.startswith("smote:").to_numpy()
    assert np.array_equal(dm.ages.numpy()[real], dm.catalog["age"].to_numpy()[real])
    assert torch.isnan(dm.ages[torch.from_numpy(~real)]).all()  # SMOTE rows record no age
    x, y, index = next(iter(dm.train_dataloader()))
    dm.trainer = type("Training", (), {"training": True})()
    *_, ages = dm.on_after_batch_transfer((x, y, index), 0)
    assert torch.allclose(ages, dm.ages[index], equal_nan=True)
    for bad, says in ((("model.head=single",), "needs model.head=multi"),
                      (("model.head=multi", "model.age_regression=-1"), "must be >= 0")):
        with pytest.raises(ConfigError, match=says):  # refused before any image is read
            check_config(make_cfg(synth_root, tmp_path / "bad", "model.age_regression=1", *bad))


def test_task_loss_is_the_weighted_sum_of_per_task_losses():
    torch.manual_seed(0)
    logits = {t: torch.randn(8, n) for t, n in zip(labels.TASKS, labels.TASK_SHAPE, strict=True)}
    y = torch.randint(0, 18, (8,))
    loss = TaskLoss(CrossEntropy, {"age": 2.0})
    m, g, a = labels.decode(y)
    want = (torch.nn.functional.cross_entropy(logits["mask"], m)
            + torch.nn.functional.cross_entropy(logits["gender"], g)
            + 2 * torch.nn.functional.cross_entropy(logits["age"], a))
    assert torch.allclose(loss(logits, y), want)
    # a one-hot probability target is the same target
    assert torch.allclose(loss(logits, torch.nn.functional.one_hot(y, 18).float()), want)
    with pytest.raises(ConfigError, match="unknown task"):
        TaskLoss(CrossEntropy, {"ages": 1.0})


def test_task_losses_get_each_tasks_class_counts():
    counts = list(range(1, 19))
    loss = TaskLoss(lambda: CrossEntropy(weighted=True))
    loss.set_class_counts(counts)
    for task, task_counts in zip(labels.TASKS, labels.task_marginals(np.array(counts)),
                                 strict=True):
        want = CrossEntropy(weighted=True, class_counts=list(task_counts)).weight
        assert torch.equal(loss.losses[task].weight, want)


@pytest.mark.parametrize("loss", [CrossEntropy(label_smoothing=0.1),
                                  FocalLoss(gamma=2.0, label_smoothing=0.1),
                                  FocalLoss(weighted=True, class_counts=list(range(1, 19))),
                                  CrossEntropy(weighted=True, class_counts=list(range(1, 19))),
                                  SoftF1Loss()])
def test_every_loss_takes_probability_targets(loss):
    torch.manual_seed(0)
    logits, y = torch.randn(16, 18), torch.randint(0, 18, (16,))
    onehot = torch.nn.functional.one_hot(y, 18).float()
    assert torch.allclose(loss(logits, onehot), loss(logits, y), atol=1e-6)
    half = 0.5 * onehot + 0.5 * onehot.flip(0)
    assert torch.isfinite(loss(logits, half))


def test_soft_age_groups_train_on_probability_targets(synth_root, tmp_path):
    from maskcls.training.recipe import build, check_config

    dm, _ = build(make_cfg(synth_root, tmp_path / "run", "data.age_sigma=3"))
    x, y, index = next(iter(dm.train_dataloader()))
    dm.trainer = type("Training", (), {"training": True})()
    _, target, _, ages = dm.on_after_batch_transfer((x, y, index), 0)
    assert torch.equal(target, labels.soft_age_targets(y, ages, (30, 60), 3.0))
    assert torch.equal(target.argmax(1), y)
    dm.trainer = type("Validating", (), {"training": False})()
    assert torch.equal(dm.on_after_batch_transfer((x, y, index), 0)[1], y)  # hard in validation
    out = tmp_path / "mixed"
    train(make_cfg(synth_root, out, "data.age_sigma=3", "model.head=multi",
                   "augment.mixup=0.4"))
    assert np.isfinite(pd.read_csv(out / "metrics.csv")["train/loss_epoch"].dropna()).all()
    # refused before any image is read
    with pytest.raises(ConfigError, match=r"data.age_sigma must be in \[0, 10\], got -1"):
        check_config(make_cfg(synth_root, tmp_path / "bad", "data.age_sigma=-1"))


def test_multi_head_runs_end_to_end_and_predict_needs_no_flag(synth_root, tmp_path):
    out = tmp_path / "run"
    train(make_cfg(synth_root, out, "model.head=multi", "augment.mixup=0.4",
                   "augment.cutmix=1.0", "model.age_regression=0.5"))
    # the age head trained on the (mixed) recorded ages of every training batch
    assert np.isfinite(pd.read_csv(out / "metrics.csv")["train/age_loss"].dropna()).all()
    ckpt = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["head"] == "multi"
    val = pd.read_csv(out / "val_predictions.csv")
    probs = val[[f"prob_{c}" for c in range(18)]].to_numpy()
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
    res = predict(PredictSettings(ckpt=str(out), output=str(tmp_path / "sub.csv"), tta=True))
    assert res["rows"] == 6 * labels.SHOTS_PER_PERSON


# ------------------------------------------------------------------------- batch mixing
def test_mixup_targets_are_convex_mixtures_of_the_pair():
    np.random.seed(0)
    mix = MixBatch(AugmentConfig(mixup=1.0))
    x = torch.rand(6, 3, 8, 6)
    y = torch.tensor([0, 5, 7, 17, 3, 3])
    mixed, target = mix(x.clone(), y)
    onehot = torch.nn.functional.one_hot(y, 18).float()
    assert torch.allclose(target.sum(1), torch.ones(6))
    lam = float(target[0, 0])  # image 0 mixes with image 5 (timm pairs i with B-1-i)
    assert 0 <= lam <= 1
    assert torch.allclose(target, lam * onehot + (1 - lam) * onehot.flip(0), atol=1e-6)
    assert torch.allclose(mixed, lam * x + (1 - lam) * x.flip(0), atol=1e-6)


def test_probability_targets_mix_as_class_ids_do():
    """Soft age targets arrive as rows: an odd batch mixes them with the same weight and pairs,
    and keeps its last row as given."""
    x, y = torch.rand(5, 3, 8, 6), torch.tensor([0, 5, 7, 17, 4])
    rows = labels.soft_age_targets(y, torch.tensor([20.0, 59.0, 40.0, 60.0, 58.0]), (30, 60), 2)
    np.random.seed(0)
    _, from_ids = MixBatch(AugmentConfig(mixup=1.0))(x.clone(), y)
    np.random.seed(0)
    _, from_rows = MixBatch(AugmentConfig(mixup=1.0))(x.clone(), rows)
    lam = float(from_ids[0, 0])
    assert 0 < lam < 1
    assert torch.allclose(from_rows[:4], lam * rows[:4] + (1 - lam) * rows[:4].flip(0))
    assert torch.equal(from_rows[4], rows[4])
    assert torch.allclose(from_rows.sum(1), torch.ones(5))


def test_mixing_mixes_a_per_image_value_with_the_targets_weight():
    np.random.seed(0)
    x, y = torch.rand(5, 3, 8, 6), torch.tensor([0, 5, 7, 17, 3])
    ages = torch.tensor([20.0, 30.0, 40.0, 60.0, 50.0])
    _, target, mixed = MixBatch(AugmentConfig(mixup=1.0))(x.clone(), y, ages)
    lam = float(target[0, 0])  # image 0 mixes with image 3 (timm pairs i with B-1-i, even part)
    assert 0 < lam < 1
    assert torch.allclose(mixed[:4], lam * ages[:4] + (1 - lam) * ages[:4].flip(0))
    assert float(mixed[4]) == 50.0  # the odd one out is not mixed


def test_cutmix_pastes_a_box_and_weighs_targets_by_its_area():
    np.random.seed(1)
    mix = MixBatch(AugmentConfig(cutmix=1.0))
    x = torch.stack([torch.zeros(3, 16, 12), torch.ones(3, 16, 12)])
    mixed, target = mix(x.clone(), torch.tensor([0, 1]))
    pasted = float(mixed[0].mean())  # image 0 gets a box of image 1's ones
    assert math.isclose(float(target[0, 1]), pasted, abs_tol=1e-6)
    assert math.isclose(float(target[0, 0]), 1 - pasted, abs_tol=1e-6)


def test_an_odd_batch_keeps_its_last_image_unmixed():
    np.random.seed(0)
    x = torch.rand(5, 3, 4, 4)
    mixed, target = MixBatch(AugmentConfig(mixup=1.0))(x.clone(), torch.arange(5))
    assert torch.equal(mixed[4], x[4]) and float(target[4, 4]) == 1.0
    assert MixBatch.from_config(AugmentConfig()) is None  # nothing mixes by default


def test_zoom_and_shift_move_the_content_where_asked():
    x = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    x[0, :, 2, 5] = 255
    tf = BatchTransform(AugmentConfig(rotation=0, hflip=0, scale=0.9, translate=0.25),
                        [0, 0, 0], [1, 1, 1])
    p = {"angle": torch.zeros(1, dtype=torch.float64), "flip": torch.zeros(1, dtype=torch.bool),
         "zoom": torch.tensor([1.0], dtype=torch.float64),
         "shift": torch.tensor([[0.25, 0.0]], dtype=torch.float64)}
    out = torch.empty(1, 3, 8, 8)
    tf._transform(x, out, p)
    assert (out[0, 0] > 0.5).nonzero().tolist() == [[2, 7]]  # 2 pixels right
    p.update(zoom=torch.tensor([2.0], dtype=torch.float64),
             shift=torch.zeros(1, 2, dtype=torch.float64))
    tf._transform(x, out, p)  # x2 about the centre (3.5, 3.5): (2, 5) -> (0.5, 6.5)
    assert (out[0, 0] > 0.2).nonzero().tolist() == [[0, 6], [0, 7], [1, 6], [1, 7]]


def test_zoom_and_shift_leave_the_other_augmentations_draws_alone():
    torch.manual_seed(3)
    base = BatchTransform(AugmentConfig(brightness=0.2), [0.5] * 3, [0.2] * 3).draw(4, 8, 8)
    torch.manual_seed(3)
    more = BatchTransform(AugmentConfig(brightness=0.2, scale=0.2, translate=0.1),
                          [0.5] * 3, [0.2] * 3).draw(4, 8, 8)
    for key, value in base.items():
        assert torch.equal(value, more[key]), key


# ---------------------------------------------------------------------------------- EMA
def test_ema_weights_are_the_ones_validated_and_saved(synth_root, tmp_path):
    out = tmp_path / "run"
    train(make_cfg(synth_root, out, "callbacks=ema", "callbacks.ema.decay=0.5"))
    best = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    key = "net.conv1.weight"
    # last.ckpt: the average as state_dict, the raw weights beside it (for resuming)
    assert not torch.equal(last["state_dict"][key], last["current_model_state"][key])
    # best.ckpt (weights only, the same single epoch): the average, not the raw weights
    assert torch.equal(best["state_dict"][key], last["state_dict"][key])
    # and the run's final figures come from those weights
    MaskClassifier(head="multi").load_state_dict(best["state_dict"])  # a complete model
    saved = json.loads((out / "metrics.json").read_text())
    val = pd.read_csv(out / "val_predictions.csv")
    assert math.isclose(saved["val"]["f1"], score(val["pred"], val["label"])["f1"], abs_tol=1e-6)


def test_ema_options_are_checked(synth_root, tmp_path):
    with pytest.raises(ValueError, match=r"callbacks.ema.decay must be in \(0, 1\)"):
        train(make_cfg(synth_root, tmp_path, "callbacks=ema", "callbacks.ema.decay=1.5"))


# ------------------------------------------------------------------- pretrained weights
def test_pretrained_file_loads_local_weights(tmp_path):
    source = timm.create_model("resnet18", num_classes=1000)
    weights = tmp_path / "resnet18_imagenet.pth"
    torch.save(source.state_dict(), weights)
    for head in ("single", "multi"):
        model = MaskClassifier(pretrained_file=str(weights), head=head)
        assert torch.equal(model.net.conv1.weight, source.conv1.weight)
        assert torch.equal(model.net.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
    fresh = MaskClassifier()
    assert not torch.equal(fresh.net.conv1.weight, source.conv1.weight)


def test_pretrained_file_errors_name_the_file(tmp_path, synth_root):
    with pytest.raises(ConfigError, match="no such file"):
        train(make_cfg(synth_root, tmp_path / "a", f"model.pretrained_file={tmp_path}/no.pth"))
    other = tmp_path / "densenet.pth"
    torch.save(timm.create_model("densenet121").state_dict(), other)
    with pytest.raises(ConfigError, match="does not fit model.backbone=resnet18"):
        MaskClassifier(pretrained_file=str(other))


# -------------------------------------------------------------------------- calibration
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("by_person", [False, True])
def test_calibration_never_lowers_the_macro_f1_it_is_fitted_on(seed, by_person):
    rng = np.random.default_rng(seed)
    truth = rng.choice(18, size=400, p=rng.dirichlet(np.ones(18)))
    logits = rng.normal(size=(400, 18)) + 2.0 * np.eye(18)[truth] * rng.random((400, 1))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    groups = np.arange(400) // 7 if by_person else None  # seven shots a person
    fitted = calibration.fit(probs, truth, groups)
    assert fitted["share"] in calibration.SHARES
    after = calibration.apply(probs, fitted["offsets"])
    assert np.allclose(after.sum(1), 1)
    f1_before = score(probs.argmax(1), truth)["f1"]
    f1_after = score(after.argmax(1), truth)["f1"]
    assert math.isclose(fitted["f1_before"], f1_before, abs_tol=1e-6)
    assert math.isclose(fitted["f1_after"], f1_after, abs_tol=1e-6)
    assert f1_after >= f1_before


def test_calibration_moves_decisions_towards_an_under_predicted_group():
    # the model is biased against age >= 60: its probabilities are scaled down by 100
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 18, 900)
    probs = np.full((900, 18), 0.2 / 17)
    probs[np.arange(900), truth] = 0.8
    old = labels.decode(np.arange(18))[2] == 2
    probs[:, old] /= 100
    probs /= probs.sum(1, keepdims=True)
    fitted = calibration.fit(probs, truth)
    assert fitted["f1_after"] > fitted["f1_before"] + 0.1
    assert fitted["offsets"]["age"][2] > fitted["offsets"]["age"][0]


def test_a_run_writes_calibration_and_predict_applies_it(fold_runs, tmp_path):
    run = fold_runs / "0"
    saved = json.loads((run / "calibration.json").read_text())
    assert saved["f1_after"] >= saved["f1_before"]
    plain = predict(PredictSettings(ckpt=str(run),
                                    output=str(tmp_path / "plain.csv"),
                                    save_probs=True))
    tuned = predict(PredictSettings(ckpt=str(run),
                                    output=str(tmp_path / "tuned.csv"),
                                    save_probs=True,
                                    calibrate=True))
    assert tuned["uncalibrated_score"] == plain["score"]
    raw = pd.read_csv(tmp_path / "plain_probs.csv")
    probs = raw[[f"prob_{c}" for c in range(18)]].to_numpy()
    want = calibration.apply(probs, saved["offsets"]).argmax(1)
    assert (pd.read_csv(tmp_path / "tuned.csv")["ans"].to_numpy() == want).all()
    # an ensemble of folds averages its members' offsets
    both = predict(PredictSettings(ckpt=str(fold_runs),
                                   output=str(tmp_path / "ens.csv"),
                                   calibrate=True))
    assert both["members"] == 2


def test_calibrate_without_a_calibration_file_says_so(fold_runs, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(fold_runs / "0", run)
    (run / "calibration.json").unlink()
    with pytest.raises(Exception, match="calibration.json does not exist"):
        predict(PredictSettings(ckpt=str(run), output=str(tmp_path / "sub.csv"), calibrate=True))
    assert not (tmp_path / "sub.csv").exists()


# ------------------------------------------------------------------------ pseudo-labels
def _probs_csv(root, path, confident: int):
    """A predict.py-style probabilities file: the first ``confident`` eval images sure of
    their class, the others spread out."""
    ans = pd.read_csv(root / "eval" / "answers.csv")
    probs = np.full((len(ans), 18), 1 / 18)
    probs[:confident] = 0.0
    probs[np.arange(confident), (ans["ans"].to_numpy()[:confident] + 1) % 18] = 1.0
    table = pd.concat([ans[["ImageID"]], pd.DataFrame(probs, columns=[f"prob_{c}" for c in
                                                                      range(18)])], axis=1)
    table.to_csv(path, index=False)
    return ans


def test_pseudo_labelled_images_train_and_never_reach_validation(synth_root, tmp_path):
    from maskcls.training.recipe import build

    ans = _probs_csv(synth_root, tmp_path / "probs.csv", confident=10)
    cfg = make_cfg(synth_root, tmp_path / "run", f"data.pseudo_labels={tmp_path}/probs.csv",
                   "data.pseudo_threshold=0.9")
    dm, _ = build(cfg)
    cat = dm.catalog
    pseudo = cat[cat["person_id"].str.startswith("pseudo:")]
    assert len(pseudo) == 10
    # their label is the predicted one (here deliberately not the true one)
    want = dict(zip(ans["ImageID"], (ans["ans"] + 1) % 18, strict=True))
    assert all(want[p.rsplit("/", 1)[1]] == label
               for p, label in zip(pseudo["path"], pseudo["label"], strict=True))
    assert set(pseudo.index) <= set(dm.train_rows)
    assert not set(pseudo.index) & set(dm.val_rows)
    assert not dm.val_catalog["path"].str.contains("/eval/").any()
    # validation is the same people as without pseudo-labels
    plain, _ = build(make_cfg(synth_root, tmp_path / "run2"))
    assert sorted(plain.val_catalog["path"]) == sorted(dm.val_catalog["path"])


def test_pseudo_label_inputs_are_checked(synth_root, tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        train(make_cfg(synth_root, tmp_path / "a", f"data.pseudo_labels={tmp_path}/no.csv"))
    pd.DataFrame({"ImageID": ["x.jpg"], "ans": [0]}).to_csv(tmp_path / "sub.csv", index=False)
    with pytest.raises(Exception, match="lacks column"):
        train(make_cfg(synth_root, tmp_path / "b", f"data.pseudo_labels={tmp_path}/sub.csv"))
    with pytest.raises(ConfigError, match="pseudo_threshold"):
        train(make_cfg(synth_root, tmp_path / "c", "data.pseudo_threshold=1.5"))


# ---------------------------------------------------------------------------------- SMOTE
def test_smote_fills_rare_classes_up_to_the_median_with_same_class_blends():
    from maskcls.data.smote import smote_images

    rng = np.random.default_rng(0)
    targets = np.repeat([0, 1, 2, 3], [40, 30, 6, 3])
    pixels = torch.from_numpy(rng.integers(0, 256, (len(targets), 3, 8, 6), dtype=np.uint8))
    images, classes = smote_images(pixels, targets, seed=0)
    counts = np.bincount(np.concatenate([targets, classes]), minlength=4)
    median = int(np.median(np.bincount(targets)))
    assert counts[2] == counts[3] == median and counts[0] == 40 and counts[1] == 30
    for img, c in zip(images, classes, strict=True):  # a blend of two images of its class
        own = pixels[torch.as_tensor(targets == c)]
        assert (img >= own.min(0).values).all() and (img <= own.max(0).values).all()


def test_smote_images_train_only(synth_root, tmp_path):
    from maskcls.training.recipe import build

    dm, _ = build(make_cfg(synth_root, tmp_path / "run", "data.smote=true"))
    synthetic = dm.catalog.index[dm.catalog["person_id"].str.startswith("smote:")]
    assert len(synthetic) > 0
    assert set(synthetic) <= set(dm.train_rows) and not set(synthetic) & set(dm.val_rows)
    assert len(dm.dataset) == len(dm.catalog) == len(dm._cache)
    with pytest.raises(ConfigError, match="data.cache=ram or data.cache=disk"):
        train(make_cfg(synth_root, tmp_path / "b", "data.smote=true", "data.cache=none"))


# ------------------------------------------------------------------------- experiments
def test_quick_trains_with_per_task_heads_and_zoom(synth_root, tmp_path):
    out = tmp_path / "run"
    cfg = make_cfg(synth_root, out, "experiment=quick", "debug=fast")
    assert cfg.model.head == "multi" and cfg.augment.scale > 0 and cfg.augment.translate > 0
    train(cfg)
    assert (out / "metrics.json").exists()


def test_competition_is_what_the_readme_says(synth_root, tmp_path):
    from hydra import compose, initialize_config_dir

    from maskcls.training.recipe import check_config

    def cfg(*extra):
        with initialize_config_dir(str(CONF), version_base="1.3"):
            return compose("train", overrides=["experiment=competition", f"data.root={synth_root}",
                                               f"paths.output_dir={tmp_path}", *extra])

    plain = cfg()
    assert plain.model.pretrained is True and plain.trainer.accelerator == "gpu"
    assert (plain.model.backbone, plain.model.head) == ("efficientnet_b3", "multi")
    assert plain.data.n_folds == 5 and list(plain.data.image_size) == [384, 288]
    assert "ema" in plain.callbacks and plain.augment.mixup > 0 and plain.augment.cutmix > 0
    offline = cfg("trainer.accelerator=cpu", "model.pretrained=false")
    dm = check_config(offline).datamodule  # every value passes the checks
    assert dm.pipeline.image_size == (384, 288) and dm.split.n_folds == 5
