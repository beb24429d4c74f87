"""Experiment trackers (``conf/logger``): Lightning's CSV, TensorBoard, MLflow and W&B loggers.

Before any data is read, each configured tracker's package is checked (a missing one stops the
run with the ``pip install`` line that adds it). When the trainer starts, the run's whole config
is logged as parameters and each tracker's run id is written to the run folder
(``trackers.json``), so a run folder and its tracker entry always find each other, and a resumed
run (``resume=``) continues the same tracker runs. At the end,
the best checkpoint's figures and the run's plots and files are sent to the trackers as well.
"""

from __future__ import annotations

import contextlib
import json
import logging
import netrc
import os
from collections.abc import Iterator, Mapping, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import (
    CSVLogger,
    Logger,
    MLFlowLogger,
    TensorBoardLogger,
    WandbLogger,
)

from maskcls import atomic
from maskcls.errors import ConfigError
from maskcls.run import folder as rf

log = logging.getLogger(__name__)

IDS_FILE = rf.TRACKERS
# logger class -> (packages, any of which provides it; the command that installs it)
REQUIRES: dict[str, tuple[tuple[str, ...], str]] = {
    "TensorBoardLogger": (("tensorboard", "tensorboardX"), "pip install -e ."),
    "MLFlowLogger": (("mlflow",), "pip install -e '.[trackers]'"),
    "WandbLogger": (("wandb",), "pip install -e '.[trackers]'"),
}
# Files of the run folder sent to trackers that store files (MLflow artifacts, W&B files).
ARTIFACTS = (rf.CONFUSION_PNG, rf.LEARNING_CURVE_PNG, rf.METRICS_JSON, rf.CONFIG,
             rf.VAL_PREDICTIONS, rf.CALIBRATION)


def _configured(cfg: DictConfig) -> Iterator[tuple[str, DictConfig]]:
    for name, node in (cfg.get("logger") or {}).items():
        if node is not None:
            yield str(name), node


def check_loggers(cfg: DictConfig) -> None:
    """Every configured tracker can be built: its package is installed."""
    for name, node in _configured(cfg):
        target = str(node.get("_target_", "")).rsplit(".", 1)[-1]
        packages, install = REQUIRES.get(target, ((), ""))
        if packages and not any(find_spec(p) is not None for p in packages):
            raise ConfigError(f"logger {name} ({target}) needs the {packages[0]} package, which "
                              f"is not installed: {install} (or choose another logger=)")
        if target == "MLFlowLogger":
            _check_mlflow_store(str(node.tracking_uri), f"logger.{name}.tracking_uri")


SQLITE_MAGIC = b"SQLite format 3\x00"


def _check_mlflow_store(uri: str, key: str) -> None:
    """Before any data is read: a server must answer within a few seconds (MLflow itself
    retries for minutes), and a local store must be an SQLite file (or not exist yet)."""
    if uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).close()
        except urllib.error.HTTPError:
            return  # it answered: a server is there (auth and paths are MLflow's business)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ConfigError(f"{key}={uri}: no MLflow server answers there ({reason}); start "
                              "it (mlflow server --host ... --port ...), check the address, or "
                              "drop the override to log to the local store") from None
        return
    db = _sqlite_path(uri)
    if db is not None and db.exists():
        with open(db, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
        if head and head != SQLITE_MAGIC:
            raise ConfigError(f"{key}: {db} is not an SQLite database, so not an MLflow store; "
                              "move it away (a new store is created) or give another "
                              f"{key}=sqlite:///<file>")


def _sqlite_path(uri: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(uri[len(prefix):]).expanduser().absolute() if uri.startswith(prefix) else None


def wandb_mode(mode: str | None) -> str:
    """``auto``: online when this machine is logged in to W&B (``WANDB_API_KEY``, or the key
    ``wandb login`` stores in ~/.netrc), else offline. ``WANDB_MODE`` wins, as in wandb."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if mode not in (None, "auto"):
        return str(mode)
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1]
    try:
        logged_in = netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        logged_in = False
    return "online" if logged_in else "offline"


def _mlflow_uri(uri: str) -> str:
    """A local SQLite store (``sqlite:///path``) gets its folder made and an absolute path,
    so every run of the project, from any working directory, logs to the same store."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    path = Path(uri[len(prefix):]).expanduser().absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    return prefix + str(path)


def recorded_ids(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The tracker runs ``trackers.json`` records for ``run_dir``, each kept only when it was
    started in this very folder: a copied (or hand-edited) record never makes this run log
    into another run's tracker entry. An unreadable record starts new tracker runs."""
    path = run_dir / IDS_FILE
    try:
        ids = json.loads(path.read_text()) if path.exists() else {}
    except (ValueError, OSError) as e:
        log.warning("%s cannot be read (%s); the trackers start new runs", path, type(e).__name__)
        return {}
    if not isinstance(ids, dict):
        log.warning("%s is not a mapping of trackers; the trackers start new runs", path)
        return {}
    here = str(run_dir.resolve())
    kept = {}
    for name, entry in ids.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("run_id", ""), str):
            log.warning("%s: the %s entry is damaged; %s starts a new run", path, name, name)
        elif entry.get("run_dir") not in (None, here):
            log.warning("%s records a %s run of another folder (%s): this copy starts its own "
                        "run, linked to %s", path, name, entry["run_dir"], entry.get("run_id"))
            kept[name] = {"continued_from": entry.get("run_id")}
        else:
            kept[name] = entry
    return kept


def _mlflow_run_of(run_id: str, uri: str, run_dir: Path) -> str | None:
    """``run_id`` if the MLflow store holds it and it was started for ``run_dir`` (its
    ``run_dir`` tag); else None, with a warning saying why a new run starts."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        run = MlflowClient(tracking_uri=uri).get_run(run_id)
    except MlflowException:
        log.warning("mlflow: run %s recorded in %s is not in the store %s; a new run starts",
                    run_id, run_dir / IDS_FILE, uri)
        return None
    tagged = run.data.tags.get("run_dir")
    if tagged is not None and Path(tagged).resolve() != run_dir.resolve():
        log.warning("mlflow: run %s belongs to %s, not %s; this run starts its own, linked to it",
                    run_id, tagged, run_dir)
        return None
    return run_id


def build_loggers(cfg: DictConfig, continue_in: Path | None = None) -> list[Logger]:
    """The configured loggers. ``continue_in``: a run folder being resumed; its trackers'
    runs (``trackers.json``) are continued rather than new ones started."""
    loggers: list[Logger] = []
    tags = [str(t) for t in cfg.get("tags") or []]
    earlier = recorded_ids(continue_in) if continue_in is not None else {}
    for _, node in _configured(cfg):
        target = str(node.get("_target_", "")).rsplit(".", 1)[-1]
        kwargs: dict[str, Any] = {}
        if target == "WandbLogger":
            import wandb

            kwargs["mode"] = wandb_mode(node.get("mode"))
            kwargs["tags"] = tags or None
            # wandb's own console notes are replaced by one line (``start``)
            kwargs["settings"] = wandb.Settings(silent=True)
            if earlier.get("wandb", {}).get("run_id"):
                kwargs["id"] = earlier["wandb"]["run_id"]
        elif target == "MLFlowLogger":
            kwargs["tracking_uri"] = _mlflow_uri(str(node.tracking_uri))
            if node.get("artifact_location"):
                kwargs["artifact_location"] = str(Path(node.artifact_location).absolute())
            kwargs["tags"] = {**{t: "true" for t in tags}, "run_dir": str(cfg.paths.output_dir)}
            before = earlier.get("mlflow", {})
            if before.get("run_id"):
                with _store_lock(kwargs["tracking_uri"]):
                    kept = _mlflow_run_of(before["run_id"], kwargs["tracking_uri"], continue_in)
                if kept is not None:
                    kwargs["run_id"] = kept
                else:
                    kwargs["tags"]["continued_from"] = before["run_id"]
            elif before.get("continued_from"):
                kwargs["tags"]["continued_from"] = before["continued_from"]
        with _store_lock(kwargs.get("tracking_uri")):  # the client creates a new store
            logger = instantiate(node, **kwargs)
        if isinstance(logger, WandbLogger) and logger._wandb_init.get("anonymous") is None:
            # Lightning always passes `anonymous`, which wandb >= 0.19 warns is ignored
            logger._wandb_init.pop("anonymous")
        loggers.append(logger)
    return loggers


def start(loggers: Sequence[Logger], cfg: DictConfig, out: Path,
          continued: bool = False) -> dict[str, Any]:
    """Log the whole config as parameters (``model.backbone``, ``data.batch_size`` ...) and
    write the trackers' run ids to ``trackers.json`` (rank 0, before training). ``continued``:
    the trackers continue the runs of a resumed run folder."""
    params = pd.json_normalize(OmegaConf.to_container(cfg, resolve=True), sep=".").iloc[0]
    params = params.to_dict()
    ids: dict[str, Any] = {}
    for logger in loggers:
        if isinstance(logger, CSVLogger):
            ids["csv"] = {"file": str(Path(logger.log_dir) / rf.METRICS_CSV)}
            continue
        if isinstance(logger, MLFlowLogger):
            ids["mlflow"] = _start_mlflow(logger, params, continued)
            continue
        logger.log_hyperparams(params)
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            ids["wandb"] = {"run_id": run.id, "project": run.project, "mode": run.settings.mode,
                            "dir": str(Path(run.dir).parent)}
            if run.settings.mode == "offline":
                log.info("wandb: offline run in %s; upload it with `wandb sync %s`",
                         ids["wandb"]["dir"], ids["wandb"]["dir"])
            else:
                ids["wandb"]["url"] = run.url
                log.info("wandb: %s", run.url)
        elif isinstance(logger, TensorBoardLogger):
            ids["tensorboard"] = {"log_dir": logger.log_dir}
    for entry in ids.values():  # a copy of the folder is told from the folder itself
        entry["run_dir"] = str(out.resolve())
    if ids:
        atomic.write_text(out / IDS_FILE, json.dumps(ids, indent=2) + "\n")
    return ids


def _store_lock(uri: str | None) -> contextlib.AbstractContextManager:
    """A local SQLite store is created (its tables migrated) by the first client that opens
    it; two runs doing that at once fail ("table experiments already exists"). They take turns
    on a file lock beside the store."""
    db = _sqlite_path(str(uri)) if uri else None
    return FileLock(f"{db}.lock") if db is not None else contextlib.nullcontext()


def _start_mlflow(logger: MLFlowLogger, params: Mapping[str, Any],
                  continued: bool) -> dict[str, Any]:
    """Open the run (creating a local store on first use, one process at a time: two runs
    creating one SQLite store together would both run its migrations) and log the params."""
    with _store_lock(logger._tracking_uri):
        try:
            client = logger.experiment
        except Exception as e:  # noqa: BLE001 - MLflow and SQLAlchemy raise their own types
            where = _sqlite_path(logger._tracking_uri) or logger._tracking_uri
            raise ConfigError(f"the MLflow store {where} cannot be opened ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]}); move it away or give another "
                              "logger.mlflow.tracking_uri") from None
    _log_mlflow_params(logger, params, continued)
    return {"run_id": logger.run_id, "experiment_id": logger.experiment_id,
            "experiment_name": client.get_experiment(logger.experiment_id).name,
            "tracking_uri": client.tracking_uri}


def _log_mlflow_params(logger: MLFlowLogger, params: Mapping[str, Any],
                       continued: bool) -> None:
    """MLflow refuses to change a logged parameter: a continued run (resume=) logs the new
    keys, and its changed values (trainer.max_epochs, ckpt_path) as ``resumed.<key>`` tags."""
    client, run_id = logger.experiment, logger.run_id
    logged = client.get_run(run_id).data.params if continued else {}
    if not logged:
        logger.log_hyperparams(params)
        return
    fresh = {k: v for k, v in params.items() if k not in logged}
    if fresh:
        logger.log_hyperparams(fresh)
    for key, value in params.items():
        if key in logged and logged[key] != str(value):
            client.set_tag(run_id, f"resumed.{key}", str(value))


def finish(loggers: Sequence[Logger], out: Path, metrics: Mapping[str, Any]) -> None:
    """Send the best checkpoint's figures (``best/...``) and the run's files to the trackers."""
    scalars = {f"best/{k}": float(v) for k, v in metrics["val"].items()
               if isinstance(v, int | float) and not isinstance(v, bool)}
    if metrics.get("best_epoch") is not None:
        scalars["best/epoch"] = float(metrics["best_epoch"])
    files = [out / name for name in ARTIFACTS if (out / name).exists()]
    for logger in loggers:
        if isinstance(logger, CSVLogger):
            continue  # metrics.json holds these
        try:
            _send(logger, scalars, files)
        except Exception as e:  # noqa: BLE001 - a tracker outage must not lose the run
            log.warning("could not send the results to %s (%s: %s); they are in %s",
                        type(logger).__name__, type(e).__name__, e, out)


def _send(logger: Logger, scalars: Mapping[str, float], files: Sequence[Path]) -> None:
    if isinstance(logger, MLFlowLogger):
        client, run_id = logger.experiment, logger.run_id
        for key, value in scalars.items():
            client.log_metric(run_id, key, value)
        for path in files:
            client.log_artifact(run_id, str(path))
    elif isinstance(logger, WandbLogger):
        import wandb

        run = logger.experiment
        run.summary.update(scalars)
        for path in (p for p in files if p.suffix == ".png"):
            logger.log_image(path.stem, [str(path)])
        artifact = wandb.Artifact(f"run-{run.id}-files", type="run-files")
        for path in files:
            artifact.add_file(str(path))
        run.log_artifact(artifact)
    elif isinstance(logger, TensorBoardLogger):
        import numpy as np
        from PIL import Image

        writer = logger.experiment
        for key, value in scalars.items():
            writer.add_scalar(key, value)
        for path in (p for p in files if p.suffix == ".png"):
            writer.add_image(path.stem, np.asarray(Image.open(path).convert("RGB")),
                             dataformats="HWC")
        writer.flush()
