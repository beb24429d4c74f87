"""Named experiments keep their promise whatever data group or tree they are composed with."""

import pytest
from conftest import CONF, ROOT, cli, make_cfg
from hydra import compose, initialize_config_dir

from maskcls.errors import ConfigError
from maskcls.training.recipe import train


def _compose(*overrides: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize("data", ["synthetic", "competition"])
def test_quick_sets_what_its_time_and_score_depend_on(data, tmp_path):
    cfg = _compose("experiment=quick", f"data={data}", f"data.root={tmp_path}")
    assert list(cfg.data.image_size) == [80, 60]
    assert cfg.trainer.max_epochs == 36
    assert cfg.data.cache == "ram" and cfg.data.batch_size == 64
    assert cfg.data.undersample.keep_masked == 1
    assert cfg.model.head == "multi" and cfg.model.backbone == "resnet10t"
    assert cfg.augment.scale == 0.15 and cfg.augment.mixup == 0
    # the middle of the photo, where face and hair are, gets the pixels (as in competition)
    assert list(cfg.data.center_crop) == [0.8, 0.85]
    # soft age groups: the 55-59s teach "maybe 60+" (data=competition alone sets 0)
    assert cfg.data.age_sigma == 6


def test_quick_with_face_boxes_says_which_crop_to_drop_before_training(synth_root, tmp_path):
    # quick crops the middle of the photo; a face crop on top would crop twice
    boxes = synth_root / "true_face_boxes.csv"
    with pytest.raises(ConfigError, match=r"data\.center_crop=null with face boxes"):
        train(make_cfg(synth_root, tmp_path / "run", "experiment=quick",
                       f"data.face_boxes={boxes}"))
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert not list(tmp_path.rglob("*.ckpt"))


def test_the_competition_experiment_runs_one_batch_on_a_cpu(synth_root, tmp_path):
    res = cli("experiment=competition", "debug=fast", f"data.root={synth_root}",
              "trainer.accelerator=cpu", "trainer.precision=32-true", "model.pretrained=false",
              "data.cache=none", "data.batch_size=4", "data.image_size=[64,48]",
              f"hydra.run.dir={tmp_path / 'run'}", cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "fast_dev_run" in res.stderr + res.stdout
