"""Train one run (or, with -m, a sweep): ``python train.py [group=option ...] [key=value ...]``.

Examples::

    python train.py                           # synthetic data, resnet18, ~2 min on 2 CPU cores
    python train.py loss=focal optimizer=sgd scheduler=step model=densenet161
    python train.py data=competition data.root=/path/to/data trainer=gpu
    python train.py -m data.n_folds=5 'data.fold=range(5)'
"""

import sys
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig

import maskcls.run  # noqa: F401 - notes when the run started, before Hydra writes its files
from maskcls.errors import one_line_errors
from maskcls.run.overrides import check_argv

# Library deprecation chatter that users can do nothing about.
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
# The CSV logger's "directory not empty" note: maskcls itself refuses another run's folder.
warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
# Lightning's "fewer training batches than the logging interval" on every small tree: metrics
# are logged per epoch, so nothing is missing.
warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    # torch, Lightning and timm load here, not at import: `train.py --help` stays instant
    from maskcls.training.recipe import run

    with one_line_errors():
        return run(cfg)


def _resume_in_place(argv: list[str]) -> list[str]:
    """``resume=DIR`` continues the run inside DIR: no new Hydra run folder, and Hydra's
    record of the original run (DIR/.hydra) is left as it was."""
    dirs = [a.split("=", 1)[1] for a in argv if a.startswith("resume=")]
    if dirs and dirs[0] not in ("", "null"):
        return [*argv, f"hydra.run.dir={dirs[0]}", "hydra.output_subdir=null"]
    return argv


if __name__ == "__main__":
    check_argv(sys.argv[1:], Path(__file__).parent / "conf")
    sys.argv = _resume_in_place(sys.argv)
    main()
