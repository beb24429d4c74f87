"""Train one run (or, with -m, a sweep): ``python train.py [group=option ...] [key=value ...]``.

Examples::

    python train.py                                   # synthetic data, resnet18, ~3 min on CPU
    python train.py loss=focal optimizer=sgd scheduler=step model=densenet161
    python train.py data=competition data.root=/path/to/data trainer=gpu
    python train.py -m data.n_folds=5 'data.fold=range(5)'
"""

import warnings

import hydra
from omegaconf import DictConfig

from maskcls.inference import USER_ERRORS
from maskcls.training import run

# Library deprecation chatter that users can do nothing about.
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
warnings.filterwarnings("ignore", message=".*exists and is not empty.*")


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    try:
        return run(cfg)
    except USER_ERRORS as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
