"""Experiment trackers: MLflow against its real local store, W&B offline, TensorBoard event
files; run ids recorded in the run folder; a missing package refused before any data is read."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import make_cfg

from maskcls.errors import ConfigError
from maskcls.training import trackers
from maskcls.training.recipe import check_config, train


def test_mlflow_and_tensorboard_record_the_run(synth_root, tmp_path, capfd):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    train(make_cfg(synth_root, out, "logger=[mlflow,tensorboard]", "trainer.max_epochs=2",
                   f"paths.tracking_dir={tmp_path / 'store'}", "tags=[smoke,mlflow]"))
    ids = json.loads((out / trackers.IDS_FILE).read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert (tmp_path / "store" / "mlflow.db").exists()  # the local store, not a server
    console = "".join(capfd.readouterr())
    for chatter in ("Creating initial MLflow database", "alembic", "Experiment with name"):
        assert chatter not in console, chatter

    client = MlflowClient(ids["mlflow"]["tracking_uri"])
    run = client.get_run(ids["mlflow"]["run_id"])
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["model.backbone"] == "resnet18" and params["data.batch_size"] == "16"
    assert params["seed"] == "42" and "optimizer.lr" in params and "augment.hflip" in params
    assert {"smoke", "mlflow"} <= set(run.data.tags) and run.data.tags["run_dir"] == str(out)
    history = client.get_metric_history(run.info.run_id, "val/f1")
    assert [m.step for m in history] == sorted(m.step for m in history) and len(history) == 2
    assert run.data.metrics["best/f1"] == pytest.approx(metrics["val"]["f1"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"confusion_matrix.png", "learning_curve.png", "metrics.json",
            "config.yaml"} <= artifacts

    events = EventAccumulator(ids["tensorboard"]["log_dir"])
    events.Reload()
    assert len(events.Scalars("val/f1")) == 2
    assert events.Scalars("best/f1")[0].value == pytest.approx(metrics["val"]["f1"])
    assert "confusion_matrix" in events.Tags()["images"]


def test_wandb_runs_offline_without_a_login(synth_root, tmp_path, monkeypatch):
    for var in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    out = tmp_path / "run"
    train(make_cfg(synth_root, out, "logger=wandb", "tags=[offline]"))
    ids = json.loads((out / trackers.IDS_FILE).read_text())["wandb"]
    assert ids["mode"] == "offline" and ids["run_id"]
    run_dir = Path(ids["dir"])
    assert run_dir.is_relative_to(out / "wandb") and ids["run_id"] in run_dir.name
    assert list(run_dir.glob("*.wandb"))  # the offline log that `wandb sync` uploads


def test_wandb_mode_follows_the_login(tmp_path, monkeypatch):
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    netrc = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(netrc))
    assert trackers.wandb_mode("auto") == "offline"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    netrc.chmod(0o600)
    assert trackers.wandb_mode("auto") == "online"
    assert trackers.wandb_mode("offline") == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert trackers.wandb_mode("auto") == "disabled"


@pytest.mark.parametrize(("logger", "package", "install"), [
    ("mlflow", "mlflow", "pip install -e '.[trackers]'"),
    ("wandb", "wandb", "pip install -e '.[trackers]'"),
    ("tensorboard", "tensorboard", "pip install -e ."),
])
def test_missing_tracker_package_is_refused_before_the_data(logger, package, install, tmp_path,
                                                            monkeypatch):
    real = trackers.find_spec
    missing = {package, "tensorboardX"}
    monkeypatch.setattr(trackers, "find_spec", lambda name: None if name in missing
                        else real(name))
    # a data root that does not exist: the tracker is what is reported, before the data
    cfg = make_cfg(tmp_path / "no-data", tmp_path / "run", f"logger={logger}")
    with pytest.raises(ConfigError, match=f"needs the {package} package") as e:
        check_config(cfg)
    assert install in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()


def test_a_resumed_run_continues_its_mlflow_run(synth_root, tmp_path):
    from mlflow.tracking import MlflowClient

    from maskcls.run.folder import resume_config

    out = tmp_path / "run"
    store = f"paths.tracking_dir={tmp_path / 'store'}"
    train(make_cfg(synth_root, out, "logger=mlflow", store))
    first = json.loads((out / trackers.IDS_FILE).read_text())["mlflow"]
    cfg = resume_config(out, ["trainer.max_epochs=2"],
                        make_cfg(synth_root, out, "logger=mlflow", store, "trainer.max_epochs=2"))
    train(cfg)
    again = json.loads((out / trackers.IDS_FILE).read_text())["mlflow"]
    assert again["run_id"] == first["run_id"]
    client = MlflowClient(first["tracking_uri"])
    runs = client.search_runs([first["experiment_id"]])
    assert len(runs) == 1 and runs[0].data.tags["resumed.trainer.max_epochs"] == "2"
    history = client.get_metric_history(first["run_id"], "val/f1")
    assert len(history) == 2 and history[0].step < history[1].step  # epochs 0 and 1


def test_a_copied_or_edited_run_folder_never_logs_into_the_original_mlflow_run(synth_root,
                                                                               tmp_path):
    from mlflow.tracking import MlflowClient

    from maskcls.run.folder import resume_config

    out, store = tmp_path / "run", f"paths.tracking_dir={tmp_path / 'store'}"
    train(make_cfg(synth_root, out, "logger=mlflow", store))
    first = json.loads((out / trackers.IDS_FILE).read_text())["mlflow"]
    client = MlflowClient(first["tracking_uri"])
    before = len(client.get_metric_history(first["run_id"], "val/f1"))

    def resume(folder, epochs):
        train(resume_config(folder, [f"trainer.max_epochs={epochs}"], make_cfg(
            synth_root, folder, "logger=mlflow", store, f"trainer.max_epochs={epochs}")))
        return json.loads((folder / trackers.IDS_FILE).read_text())["mlflow"]

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    own = resume(copy, 2)
    assert own["run_id"] != first["run_id"]
    assert client.get_run(own["run_id"]).data.tags["continued_from"] == first["run_id"]
    # a hand-edited record naming the original's run id changes nothing either
    ids = json.loads((copy / trackers.IDS_FILE).read_text())
    ids["mlflow"]["run_id"] = first["run_id"]
    (copy / trackers.IDS_FILE).write_text(json.dumps(ids))
    assert resume(copy, 3)["run_id"] != first["run_id"]
    # a run id the store does not hold (another store, a deleted run): a new run, no error
    ids = json.loads((copy / trackers.IDS_FILE).read_text())
    ids["mlflow"]["run_id"] = "0" * 32
    (copy / trackers.IDS_FILE).write_text(json.dumps(ids))
    assert resume(copy, 4)["run_id"] not in ("0" * 32, first["run_id"])
    assert len(client.get_metric_history(first["run_id"], "val/f1")) == before
    assert len(client.get_metric_history(first["run_id"], "best/f1")) == 1


@pytest.mark.parametrize("content", ["[1, 2]", '{"mlflow": "x"}', '{"mlflow": {"run_id": 5}}',
                                     "{not json"])
def test_a_damaged_trackers_record_starts_new_runs(tmp_path, content, caplog):
    (tmp_path / trackers.IDS_FILE).write_text(content)
    assert trackers.recorded_ids(tmp_path) == {}
    assert trackers.IDS_FILE in caplog.text
