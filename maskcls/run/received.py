"""Files from a folder this process did not just compose (``resume=``, ``predict.py``,
``maskcls.export``, ``maskcls.report``, ``maskcls.label_issues``) are read as data.

A run folder may come from someone else. Its ``config.yaml`` is never resolved (an
interpolation such as ``${oc.env:...}`` is refused, not evaluated), and before anything in it is
instantiated every ``_target_``, at any depth, must be a class this project configures: a
``_target_`` of ``conf/``, or a class of the library families those come from (optimisers,
schedulers, Lightning callbacks and loggers, the project's losses). Anything else, say
``builtins.open`` or ``shutil.rmtree``, is refused in one line naming the key.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from maskcls.errors import RunFolderError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
# module -> the base class its configurable classes derive from (a name, imported lazily:
# only these fixed modules are ever imported to check a received target)
_FAMILIES = {
    "torch.optim": ("torch.optim", "Optimizer"),
    "torch.optim.lr_scheduler": ("torch.optim.lr_scheduler", "LRScheduler"),
    "pytorch_lightning.callbacks": ("pytorch_lightning.callbacks", "Callback"),
    "pytorch_lightning.loggers": ("pytorch_lightning.loggers", "Logger"),
    "maskcls.model.losses": ("torch.nn", "Module"),
}
# Keys whose value is a folder Lightning writes into: in a resumed run, inside the run folder.
OUTPUT_KEYS = ("dirpath", "save_dir", "log_dir", "default_root_dir")


def _walk(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf and inner node of plain containers."""
    items = node.items() if isinstance(node, Mapping) else \
        enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        yield path, value
        yield from _walk(value, path)


@cache
def conf_targets(conf_dir: Path = CONF_DIR) -> frozenset[str]:
    """Every ``_target_`` written in the project's ``conf/`` tree."""
    found = set()
    for path in conf_dir.rglob("*.yaml"):
        try:
            tree = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            continue
        found.update(str(v) for k, v in _walk(tree) if k.rsplit(".", 1)[-1] == "_target_")
    return frozenset(found)


def allowed_target(name: str) -> bool:
    """``name`` is a class this project configures (see the module's docstring)."""
    if name in conf_targets():
        return True
    module, _, attr = name.rpartition(".")
    if module not in _FAMILIES or not attr.isidentifier() or attr.startswith("_"):
        return False
    base_module, base_name = _FAMILIES[module]
    base = getattr(importlib.import_module(base_module), base_name)
    obj = getattr(importlib.import_module(module), attr, None)
    return isinstance(obj, type) and issubclass(obj, base)


def check_targets(tree: Any, source: str) -> None:
    """Refuse a ``_target_`` (at any depth of ``tree``, plain containers) that the project
    does not configure; ``source`` names the file in the message."""
    for key, value in _walk(tree):
        if key.rsplit(".", 1)[-1] == "_target_" and \
                not (isinstance(value, str) and allowed_target(value)):
            raise RunFolderError(f"{source}: {key}={value!r} is not a class this project "
                                 "configures; a received config is never allowed to build it. "
                                 "Remove the key, or train the run again yourself")


def _check_no_interpolation(tree: Any, source: str) -> None:
    for key, value in _walk(tree):
        if isinstance(value, str) and "${" in value:
            raise RunFolderError(f"{source}: {key}={value!r} is an interpolation; a run's "
                                 "config.yaml is written resolved, so this one was edited. "
                                 "Received configs are not resolved: write the value itself")


# Targets a run's saved config.yaml may name as they were before they moved: a class's old
# module, or the datamodule class itself (its config node's keys now go to ``from_keys``).
MOVED_TARGETS = {"maskcls.progress.ProgressBar": "maskcls.training.progress.ProgressBar",
                 "maskcls.data.datamodule.MaskDataModule":
                     "maskcls.data.datamodule.MaskDataModule.from_keys"}


def load_config(path: Path, what: str) -> DictConfig:
    """The run config at ``path`` as data: plain YAML (no tags), no interpolation, only
    allowed ``_target_`` values. ``what`` names the option that led here, for the message."""
    try:
        tree = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise RunFolderError(f"{what}: {path} cannot be read ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:200] if str(e) else ''}); it may have "
                             "been cut short. Restore it from the run's .hydra/ copy.") from None
    if not isinstance(tree, dict):
        raise RunFolderError(f"{what}: {path} is empty or not a mapping; it is not a maskcls "
                             "run config")
    _check_no_interpolation(tree, str(path))
    for _, node in _walk(tree):  # runs saved before a target moved, at any depth
        if isinstance(node, dict) and node.get("_target_") in MOVED_TARGETS:
            node["_target_"] = MOVED_TARGETS[node["_target_"]]
    check_targets(tree, str(path))
    return OmegaConf.create(tree)


def check_outputs_inside(cfg: DictConfig, run_dir: Path, source: str) -> None:
    """Every folder the received config would have Lightning write into lies in ``run_dir``."""
    inside = run_dir.resolve()
    tree = OmegaConf.to_container(cfg, resolve=False)
    for key, value in _walk(tree):
        if key.rsplit(".", 1)[-1] in OUTPUT_KEYS and isinstance(value, str) and value:
            where = Path(value).expanduser().resolve()  # relative: to where Lightning runs
            if where != inside and inside not in where.parents:
                raise RunFolderError(f"{source}: {key}={value} lies outside the run folder "
                                     f"{run_dir}; a resumed run writes only into its own folder")
