"""What a run reads, settled before it starts: input paths made absolute, tags as a list, the
synthetic tree generated only at its default location, and on resume the same data as before.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from maskcls.config.schema import tag_list
from maskcls.data import catalog as cat
from maskcls.data.datamodule import DATAMODULE_KEY, MaskDataModule
from maskcls.data.fingerprint import describe_difference, train_fingerprint
from maskcls.errors import ConfigError

log = logging.getLogger(__name__)

# Every path a run reads, recorded absolute in its config.yaml: a resume or a prediction from
# another working folder reads the same files.
INPUT_PATHS = ("paths.data_dir", "paths.synthetic_dir", "paths.tracking_dir", "data.root",
               "data.cache_dir", "data.corrections", "data.face_boxes", "data.pseudo_labels",
               "model.pretrained_file", "ckpt_path")


def settle(cfg: DictConfig) -> None:
    """Normalise ``cfg`` in place (see the module's docstring)."""
    with open_dict(cfg):
        for key in INPUT_PATHS:
            value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
            if isinstance(value, str) and value and "://" not in value:
                OmegaConf.update(cfg, key, str(Path(value).expanduser().absolute()))
        cfg.tags = tag_list(cfg.get("tags"))
        _synthetic_only_at_default(cfg)


def _synthetic_only_at_default(cfg: DictConfig) -> None:
    """A tree given by ``data.root`` is data, whatever made it: the generator's settings
    (``data.synthetic``) apply only to the tree train.py generates at ``paths.synthetic_dir``."""
    data = cfg.get("data")
    if data is None or not data.get("synthetic"):
        return
    default = OmegaConf.select(cfg, "paths.synthetic_dir", default=None, throw_on_missing=False)
    root = OmegaConf.select(cfg, "data.root", default=None, throw_on_missing=False)
    if root is None or default is None or Path(str(root)) != Path(str(default)):
        data.synthetic = None


def check_data_root(cfg: DictConfig) -> None:
    """The data must exist, except the synthetic tree at its default location, which is
    generated on first use. A mistyped root is never filled with generated data."""
    root = Path(str(cfg.data.root)).expanduser()
    if cat.has_train_images(root):
        return
    if cfg.data.get("synthetic"):
        return  # settled: the default location, generated on first use
    if (root / "images").is_dir() or cat.has_train_images(root / "train"):
        right = root.parent if (root / "images").is_dir() else root / "train"
        raise ConfigError(f"data.root={str(cfg.data.root)!r} is one level off: data.root is the "
                          f"folder holding train/ and eval/; use data.root={right}")
    default = cfg.get("paths", {}).get("synthetic_dir")
    hint = ("; only the default synthetic location "
            f"(paths.synthetic_dir={default}) is generated on first use. Generate a tree "
            f"elsewhere with `python -m maskcls.synth --out {root}`"
            if default is not None else "")
    raise ConfigError(f"data.root={str(cfg.data.root)!r}: {root / 'train' / 'images'} does not "
                      f"exist. Point data.root at the folder holding train/ and eval/{hint}.")


def check_same_data(dm: MaskDataModule, ckpt: dict[str, Any], run_dir: Path) -> None:
    """A resumed run trains on the data it started on (moved or copied is fine)."""
    saved = (ckpt.get(DATAMODULE_KEY) or {}).get("data")
    if not saved:
        return  # a checkpoint from before fingerprints were recorded
    df = cat.scan_train(dm.root, dm.age_bounds)
    now = train_fingerprint(dm.root, df)
    if now != saved:
        raise ConfigError(f"resume={run_dir} trained on other data than data.root={dm.root} "
                          f"holds ({describe_difference(saved, now)}); resume with the data it "
                          "started on (data.root=<where it now lies>), or start a new run")
