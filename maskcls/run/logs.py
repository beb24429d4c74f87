"""The console without library chatter: ``conf/hydra/job_logging/maskcls.yaml`` wires
``ConsoleFormatter`` and ``DropChatter`` into Hydra's logging, so the console shows messages
plainly and ``train.log`` in the run folder keeps every record with its time and source.

Kept free of heavy imports: Hydra loads it to configure logging.
"""

from __future__ import annotations

import logging
import os
import sys

# Lines libraries print that tell a user nothing about the run (adverts, notices of things
# maskcls does on purpose).
CHATTER = (
    "💡 Tip:",                                 # Lightning's litlogger advert
    "Experiment with name",                   # MLflow creating the experiment on first use
    "Creating initial MLflow database",      # MLflow's SQLite store, first use
    "Updating database tables",
    "A new study created",                    # Optuna
    "Trainer already configured with model summary",  # maskcls configures its own
    "`Trainer.fit` stopped: `max_epochs=",   # the normal end (other reasons are kept)
    "GPU available: ",                        # the summary names the device used
    "TPU available: ",
    "HPU available: ",
)
# Library loggers kept at WARNING: migrations and connection pools speak at INFO.
QUIET_LOGGERS = ("alembic", "optuna", "mlflow", "sqlalchemy", "urllib3", "wandb", "git",
                 "onnxscript", "onnx_ir", "torch.onnx")


class DropChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(message.startswith(c) or c in message[:80] for c in CHATTER)


class ConsoleFormatter(logging.Formatter):
    """Information as it is; warnings and errors with their level and source."""

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno <= logging.INFO:
            return record.getMessage()
        return f"{record.levelname.lower()} [{record.name}]: {record.getMessage()}"


def quiet_libraries(optuna: bool = False) -> None:
    """Library loggers at WARNING, and the chatter filter on the handlers Lightning or the
    Python API set up (Hydra's job_logging adds it to its own). Called by every entry point:
    training, prediction, export, sweeps. Optuna has its own handler, set only when it is
    loaded or about to be (``optuna``: a sweep with the Optuna sweeper); importing it costs
    seconds a plain run should not pay."""
    # mlflow sets its own loggers' levels when first imported, from this variable
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # a logger's filters miss records of its children; a handler's filters see them all
    for name in ("", "pytorch_lightning", "lightning_fabric"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, DropChatter) for f in handler.filters):
                handler.addFilter(DropChatter())
    if "optuna" in sys.modules or optuna:
        import optuna as optuna_module

        optuna_module.logging.set_verbosity(optuna_module.logging.WARNING)
