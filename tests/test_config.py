"""The typed schemas: each matches the class it configures, every shipped option passes them,
and the config system itself refuses wrong types and unknown keys with the key's name."""

import dataclasses
import inspect
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import get_object

import maskcls.run  # noqa: F401 - the resolvers conf/ uses (run_label, ...)
from maskcls.config import PredictSettings, TrainConfig, settings, validate
from maskcls.config.keys import REQUIRED_GROUPS
from maskcls.config.schema import BY_TARGET
from maskcls.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf"
# What the run passes to a class itself, never from the config.
INJECTED = {"loss", "optimizer", "scheduler", "class_counts", "callbacks", "logger", "plugins",
            "self"}


def _compose(*overrides: str, name: str = "train"):
    extra = ["data.root=/data", "paths.output_dir=/tmp/run"] if name == "train" else []
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(name, overrides=[*extra, *overrides])


@pytest.mark.parametrize("target", sorted(BY_TARGET))
def test_each_schema_has_the_keys_of_the_class_it_builds(target):
    params = set(inspect.signature(get_object(target)).parameters) - INJECTED
    fields = {f.name for f in dataclasses.fields(BY_TARGET[target])} - {"_target_", "_partial_"}
    assert fields <= params, f"{target}: the schema has keys the class lacks: {fields - params}"
    if target.startswith(("maskcls.", "pytorch_lightning.")):  # every option is configurable
        assert params <= fields, f"{target}: keys the schema lacks: {params - fields}"


def _options() -> list[str]:
    groups = ["data", "model", "loss", "optimizer", "scheduler", "trainer", "callbacks",
              "logger", "augment", "experiment", "debug", "hparams_search"]
    return [f"{g}={p.stem}" for g in groups for p in sorted((CONF / g).glob("*.yaml"))]


@pytest.mark.parametrize("option", _options())
def test_every_shipped_option_passes_its_schema(option, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the gpu options
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    validate(_compose(option), TrainConfig, tuple(REQUIRED_GROUPS))


def test_values_read_as_their_type_are_written_back():
    cfg = _compose("model.pretrained=yes", "data.verify=0", "+trainer.benchmark=on")
    validate(cfg, TrainConfig, tuple(REQUIRED_GROUPS))
    assert cfg.model.pretrained is True and cfg.data.verify is False
    assert cfg.trainer.benchmark is True
    asked = settings(_compose("ckpt=run", "tta=yes", "batch_size=64", name="predict"),
                     PredictSettings)
    assert isinstance(asked, PredictSettings) and asked.tta is True and asked.batch_size == 64


@pytest.mark.parametrize(("overrides", "message"), [
    (("data.image_size=[a,b]",), "data.image_size must be a list of integers, got ['a', 'b']"),
    (("+model.dropout=0.1",), "model.dropout is not a setting of model (MaskClassifier); "
                              "did you mean model.drop_rate?"),
    (("scheduler=plateau", "scheduler.scheduler.mode=up"),
     "scheduler.scheduler.mode must be one of max, min"),
    (("+augment.rotate=5",), "augment.rotate is not a setting of augment"),
    (("callbacks=ema", "callbacks.ema.start_step=1.5"), "callbacks.ema.start_step must be an "
                                                         "integer, got 1.5"),
    (("+seeds=3",), "seeds is not a setting of conf/train.yaml; did you mean seed?"),
])
def test_wrong_types_and_unknown_keys_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as e:
        validate(_compose(*overrides), TrainConfig, tuple(REQUIRED_GROUPS))
    assert message in str(e.value)


@pytest.mark.parametrize("override", ["model.pretrained=2", "data.verify=-1", "loss.weighted=10",
                                      "+trainer.benchmark=0.5", "allow_failures=00x"])
def test_a_boolean_given_a_number_other_than_one_or_zero_is_refused(override):
    """OmegaConf reads any non-zero number as true; a flag set to 2 is a mistake, not a yes."""
    key = override.lstrip("+").split("=")[0]
    with pytest.raises(ConfigError, match=f"^{key} must be true or false"):
        validate(_compose(override), TrainConfig, tuple(REQUIRED_GROUPS))


def test_a_value_copied_from_another_key_is_named_where_it_was_set():
    """``scheduler.scheduler.T_max`` is ``${trainer.max_epochs}``: the error names the key the
    user typed, whichever node is checked first."""
    with pytest.raises(ConfigError) as e:
        validate(_compose("trainer.max_epochs=0"), TrainConfig, tuple(REQUIRED_GROUPS))
    assert str(e.value).startswith("trainer.max_epochs must be >= 1, got 0")
    assert "scheduler.scheduler.T_max" in str(e.value)


@pytest.mark.parametrize(("tags", "kept"), [("focal", "focal"), ("[a,b]", ["a", "b"])])
def test_tags_are_a_list_or_one_tag(tags, kept):
    cfg = _compose(f"tags={tags}")
    validate(cfg, TrainConfig, tuple(REQUIRED_GROUPS))
    assert cfg.tags == kept


def test_predict_settings_refuse_a_wrong_type_and_a_range():
    for override, message in (("batch_size=0", "batch_size must be >= 1"),
                              ("num_workers=x", "num_workers must be >= 0, got 'x'"),
                              ("save_probs=maybe", "save_probs must be true or false")):
        with pytest.raises(ConfigError, match=message):
            settings(_compose("ckpt=run", override, name="predict"), PredictSettings)
