"""A sweep job's record of how it ended, when it did not end well: ``failure.json`` in its
folder, and ``interrupted.json`` in the sweep's folder when SIGTERM or Ctrl-C stopped it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from maskcls import atomic
from maskcls.errors import UserInterrupted
from maskcls.run import folder as rf

log = logging.getLogger(__name__)


def record_failure(job_dir: Path, error: BaseException, trace: str) -> None:
    job_dir.mkdir(parents=True, exist_ok=True)
    failure = {"type": type(error).__name__, "message": str(error), "traceback": trace}
    atomic.write_text(job_dir / rf.FAILURE, json.dumps(failure, indent=2))
    log.error("details: %s", job_dir / rf.FAILURE)


def planned_jobs(sweep_dir: Path) -> int | None:
    """How many jobs the sweep's command line asks for (the basic sweeper's grid), from its
    ``multirun.yaml``; None when it cannot be told (another sweeper, a damaged file)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        saved = OmegaConf.load(sweep_dir / "multirun.yaml")
        if "BasicSweeper" not in str(OmegaConf.select(saved, "hydra.sweeper._target_")):
            return None
        parsed = OverridesParser.create().parse_overrides(list(saved.hydra.overrides.task))
        return sum(len(batch) for batch in BasicSweeper.split_arguments(parsed, None))
    except Exception:  # noqa: BLE001 - the count is a courtesy; the record stands without it
        return None


def record_interrupted(job_dir: Path, error: BaseException) -> None:
    """SIGTERM stopped job ``job_dir``: its ``failure.json``, and in the sweep folder which
    job was stopped, how to resume it, and which jobs never ran."""
    record_failure(job_dir, error, "")
    if not HydraConfig.initialized():
        return
    sweep_dir = Path(HydraConfig.get().sweep.dir).absolute()
    num = int(HydraConfig.get().job.num)
    total = planned_jobs(sweep_dir)
    record = {"interrupted_job": num, "job_dir": str(job_dir),
              "resume": f"python train.py resume={job_dir}",
              "never_ran": list(range(num + 1, total)) if total is not None else "unknown",
              "planned_jobs": total}
    atomic.write_text(sweep_dir / rf.INTERRUPTED, json.dumps(record, indent=2))
    log.error("%s stopped the sweep in job %d; %s lists the jobs that never ran",
              "Ctrl-C" if isinstance(error, UserInterrupted) else "SIGTERM", num,
              sweep_dir / rf.INTERRUPTED)
