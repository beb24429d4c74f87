"""A run on disk: its folder (layout, claim, resume) and the files written at its end."""

import re
import time
from pathlib import Path

from omegaconf import OmegaConf

# When the entry point was imported, before Hydra wrote anything for this run: a refused run
# removes only what is newer (``folder.discard_unstarted``).
STARTED = time.time() - 1.0


def run_suffix(*parts: object) -> str:
    """``-quick-resnet18``: what a run folder's name says it holds (the experiment, if any,
    and the backbone), for ``conf/hydra/default.yaml``."""
    words = [re.sub(r"[^A-Za-z0-9_.]+", "_", str(p)) for p in parts
             if p not in (None, "", "None", "null")]
    return "".join(f"-{w}" for w in words)


def run_label(output_dir: object) -> str:
    """A run's name in the trackers: its folder's name (a sweep job: sweep folder/job)."""
    path = Path(str(output_dir))
    return f"{path.parent.name}/{path.name}" if path.name.isdigit() else path.name


def outputs_root() -> str:
    """``outputs``, or the ``outputs`` folder the working folder already lies in: a run
    started from inside a run folder goes beside the others, not into ``outputs/outputs``."""
    here = Path.cwd()
    return next((str(p) for p in (here, *here.parents) if p.name == "outputs"), "outputs")


for _name, _fn in (("run_suffix", run_suffix), ("run_label", run_label),
                   ("outputs_root", outputs_root)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)
