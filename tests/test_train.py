"""Compose configs the way ``train.py`` does and run them on the tiny synthetic tree."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from conftest import CONF, make_cfg
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException
from hydra.utils import instantiate

from maskcls import labels
from maskcls.data.datamodule import MaskDataModule
from maskcls.model.module import create_backbone
from maskcls.training.recipe import build, train

ROOT = Path(__file__).parents[1]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize(("group", "option"), [
    *[("loss", o) for o in options("loss")],
    *[("optimizer", o) for o in options("optimizer")],
    *[("scheduler", o) for o in options("scheduler")],
    *[("augment", o) for o in options("augment")],
])
def test_every_group_option_trains(synth_root, tmp_path, group, option):
    cfg = make_cfg(synth_root, tmp_path, f"{group}={option}", "debug=fast")
    f1 = train(cfg)
    assert 0.0 <= f1 <= 1.0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["val"]) >= {"f1", "acc", "f1_mask", "f1_gender", "f1_age", "f1_per_class"}


@pytest.mark.parametrize("option", options("model"))
def test_every_model_option_builds_an_18_way_backbone(option):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={option}"])
    net = create_backbone(cfg.model.backbone, pretrained=False)
    with torch.no_grad():
        assert net.eval()(torch.zeros(1, 3, 64, 48)).shape == (1, 18)


def test_unknown_names_fail_with_the_valid_choices(synth_root, tmp_path):
    with pytest.raises(ValueError, match=r"model.backbone='resnet181' is not a timm model.*"
                                         r"resnet18"):
        train(make_cfg(synth_root, tmp_path, "model.backbone=resnet181"))
    assert not (tmp_path / "metrics.json").exists()
    with pytest.raises(MissingConfigException, match="focal"):  # Hydra lists the options
        make_cfg(synth_root, tmp_path, "loss=focall")


def test_a_run_folder_says_everything(synth_root, tmp_path):
    f1 = train(make_cfg(synth_root, tmp_path, "trainer.max_epochs=2"))
    for name in ("config.yaml", "checkpoints/best.ckpt", "checkpoints/last.ckpt", "metrics.csv",
                 "metrics.json", "confusion_matrix.png", "val_predictions.csv"):
        assert (tmp_path / name).exists(), name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["val"]["f1"] == pytest.approx(f1)
    assert len(metrics["val"]["f1_per_class"]) == 18
    assert len(metrics["confusion_matrix"]) == 18
    assert metrics["best_epoch"] in (0, 1)
    preds = pd.read_csv(tmp_path / "val_predictions.csv")
    assert len(preds) == metrics["val_images"]
    assert (preds["pred"] == preds[[f"prob_{c}" for c in range(18)]].to_numpy().argmax(1)).all()
    assert metrics["val"]["acc"] == pytest.approx((preds["pred"] == preds["label"]).mean())
    ckpt = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    assert ckpt["epoch"] == metrics["best_epoch"]
    assert "optimizer_states" not in ckpt  # best.ckpt: weights only
    # chosen by val/f1, as the callback state in the complete last.ckpt records
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    best_cb = next(v for k, v in last["callbacks"].items() if "'monitor': 'val/f1'" in k)
    assert best_cb["best_model_path"] == str(tmp_path / "checkpoints" / "best.ckpt")


@pytest.mark.parametrize("fold", range(5))
def test_kfold_never_shares_a_person(synth_root, tmp_path, fold):
    cfg = make_cfg(synth_root, tmp_path, "data.n_folds=5", f"data.fold={fold}", "data.cache=none")
    dm: MaskDataModule = instantiate(cfg.data, _convert_="all")
    dm.setup("fit")
    train_people = set(dm.catalog.iloc[dm.train_rows]["person_id"])
    val_people = set(dm.val_catalog["person_id"])
    assert not train_people & val_people
    assert train_people | val_people == set(dm.catalog["person_id"])


def test_weighted_loss_gets_training_class_counts(synth_root, tmp_path):
    dm, model = build(make_cfg(synth_root, tmp_path, "loss=weighted_ce", "data.cache=none",
                               "model.head=single"))
    counts = torch.tensor(dm.class_counts, dtype=torch.float32)
    w = model.criterion.weight
    present = counts > 0
    assert torch.allclose(w[present] * counts[present], (w[present] * counts[present])[0])
    # the per-task head weights each task by its own counts (the marginals)
    _, multi = build(make_cfg(synth_root, tmp_path / "m", "loss=weighted_ce",
                              "data.cache=none", "model.head=multi"))
    for task, task_counts in zip(labels.TASKS, labels.task_marginals(counts), strict=True):
        w = multi.criterion.losses[task].weight
        assert torch.allclose(w * task_counts, (w * task_counts)[0])


def test_train_py_command_line(synth_root, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "train.py", f"data.root={synth_root}", "data.synthetic=null",
           "data.image_size=[32,24]", "trainer.max_epochs=1", "loss=focal", "scheduler=cosine",
           "optimizer=adamw", "model.backbone=resnet18", f"hydra.run.dir={out}",
           "callbacks.progress_bar.refresh_rate=0"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "val macro-F1" in res.stdout
    assert (out / "checkpoints" / "best.ckpt").exists()
    assert (out / ".hydra" / "overrides.yaml").exists()


def test_each_run_starts_from_fresh_weights(synth_root, tmp_path):
    cfg = make_cfg(synth_root, tmp_path, "data.n_folds=2", "data.fold=0", "data.cache=none")
    pl.seed_everything(cfg.seed)
    _, first = build(cfg)
    initial = {k: v.clone() for k, v in first.state_dict().items()}
    train(cfg)  # trains a model in this process, as the jobs of a sweep do one after another
    cfg1 = make_cfg(synth_root, tmp_path / "f1", "data.n_folds=2", "data.fold=1",
                    "data.cache=none")
    pl.seed_everything(cfg1.seed)
    _, second = build(cfg1)
    for k, v in second.state_dict().items():
        assert torch.equal(v, initial[k]), k


def test_resuming_a_fold_from_another_folds_checkpoint_is_refused(synth_root, tmp_path):
    train(make_cfg(synth_root, tmp_path / "f0", "data.n_folds=2", "data.fold=0"))
    last = tmp_path / "f0" / "checkpoints" / "last.ckpt"
    with pytest.raises(ValueError, match="a fold must start from fresh weights"):
        train(make_cfg(synth_root, tmp_path / "f1", "data.n_folds=2", "data.fold=1",
                       "trainer.max_epochs=2", f"ckpt_path={last}"))


@pytest.mark.parametrize(("overrides", "message"), [
    (("loss=focal", "loss.gamma=-1"), "loss.gamma must be >= 0"),
    (("data.n_folds=5", "data.fold=7"), r"data.fold must be in 0..4, got 7"),
    (("data.undersample.keep_masked=9",), "keep_masked must be in 1..5"),
    (("data.oversample=bogus",), "data.oversample must be one of"),
    (("data.image_size=[128]",), "data.image_size must be two positive integers"),
    (("scheduler=plateau", "scheduler.warmup_epochs=2"), "not supported with scheduler=plateau"),
    (("data.cache=gpu",), "data.cache must be one of"),
])
def test_config_errors_come_before_any_data_is_read(tmp_path, overrides, message):
    # data.root does not exist: only an error found before reading data can be raised
    cfg = make_cfg(tmp_path / "no-data", tmp_path / "out", *overrides)
    with pytest.raises(ValueError, match=message):
        train(cfg)
    assert not (tmp_path / "out" / "config.yaml").exists()


@pytest.mark.parametrize("experiment", ["baseline", "seed_recipe"])
def test_experiments_compose_and_run(synth_root, tmp_path, experiment):
    cfg = make_cfg(synth_root, tmp_path, f"experiment={experiment}", "debug=fast",
                   "data.image_size=[64,48]", "data.batch_size=8")
    assert 0 <= train(cfg) <= 1
    if experiment == "seed_recipe":
        assert cfg.model.backbone == "densenet161" and cfg.data.n_folds == 5


def test_linear_warmup_then_schedule(synth_root, tmp_path):
    cfg = make_cfg(synth_root, tmp_path, "scheduler=cosine", "scheduler.warmup_epochs=1",
                   "trainer.max_epochs=3")
    assert 0 <= train(cfg) <= 1
    lrs = pd.read_csv(tmp_path / "metrics.csv").filter(like="lr-").dropna(how="all")
    series = lrs.iloc[:, 0].dropna().tolist()
    assert series[0] < series[1]  # ramps up during warm-up, then the cosine takes over


def test_image_size_too_small_for_the_backbone(synth_root, tmp_path):
    with pytest.raises(ValueError, match=r"data.image_size=\[32, 24\] is too small for "
                                         r"model.backbone=densenet161"):
        train(make_cfg(synth_root, tmp_path, "model=densenet161"))


def test_the_run_folder_has_an_epoch_table_and_a_readable_matrix(fold_runs):
    run = fold_runs / "0"
    epochs = pd.read_csv(run / "metrics_epochs.csv")
    assert epochs["epoch"].tolist() == [0, 1]
    assert {"val/f1", "train/loss_epoch", "lr-AdamW"} <= set(epochs.columns)
    assert epochs["val/f1"].notna().all()
    text = (run / "metrics.json").read_text()
    rows = [line for line in text.splitlines()
            if re.fullmatch(r"\s*\[\d+(, \d+){17}\],?", line)]
    assert len(rows) == 18
    assert json.loads(text)["confusion_matrix"] == [json.loads(r.strip().rstrip(","))
                                                    for r in rows]


def test_the_error_gallery_shows_wrong_images_rarest_class_first(fold_runs, tmp_path):
    from maskcls.analysis.galleries import errors_png

    table = pd.read_csv(fold_runs / "0" / "val_predictions.csv")
    drawn = errors_png(table, tmp_path / "e.png", per_class=3)
    assert (tmp_path / "e.png").stat().st_size > 5_000
    support = table["label"].value_counts()
    assert [support[c] for c, _ in drawn] == sorted(support[c] for c, _ in drawn)
    probs = table[[f"prob_{c}" for c in range(18)]].to_numpy()
    p_true = probs[np.arange(len(table)), table["label"]]
    for cls, tiles in drawn:
        rows = table["label"] == cls
        shown_if = ((table["pred"] != table["label"]) | (p_true < 0.9))[rows].sum()
        assert tiles == min(3, shown_if)
    assert (fold_runs / "0" / "errors.png").exists()
