"""Keys a run must have, and keys no setting takes: each named before any data is read."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from maskcls.errors import ConfigError

# Groups every training run composes; ``~group`` on the command line removes one.
REQUIRED_GROUPS = {"data": "data=synthetic", "model": "model=resnet18", "loss": "loss=ce",
                   "optimizer": "optimizer=adamw", "trainer": "trainer=default"}

MISSING_HINTS = {"data.root": "data.root=/path/to/data (the folder holding train/ and eval/)",
                 "ckpt": "ckpt=outputs/<date>/<time> (a run, a multirun folder or a .ckpt)"}


def check_given(cfg: DictConfig, groups: Iterable[str] = ()) -> None:
    """Every required value (``???``) is given and every group in ``groups`` is there."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{', '.join(missing)} must be given on the command line, e.g. "
                          + "; ".join(MISSING_HINTS.get(k, f"{k}=...") for k in missing))
    for group in groups:
        if not isinstance(cfg.get(group), DictConfig):
            raise ConfigError(f"{group}: the group is missing (removed with ~{group}?); every "
                              f"run needs one, e.g. {REQUIRED_GROUPS[group]}")


def unknown_key(key: str, name: str, known: Iterable[str], owner: str) -> ConfigError:
    """The error for ``key.name``, which ``owner`` does not take, naming the closest key."""
    known = sorted(k for k in known if k != "self" and not k.startswith("_"))
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    where = f"{key}." if key else ""
    hint = f"did you mean {where}{close[0]}?" if close else f"its keys: {', '.join(known)}"
    of = f"{key} ({owner})" if key else owner
    return ConfigError(f"{where}{name} is not a setting of {of}; {hint}")


def check_signature_keys(key: str, node: DictConfig) -> None:
    """A node that builds a class without a schema: each key is a parameter of the class."""
    target = str(node._target_)
    params = _parameters(target)
    if params is None:
        return
    for name in node:
        if not str(name).startswith("_") and str(name) not in params:
            raise unknown_key(key, str(name), params, target.rsplit(".", 1)[-1])


def target_nodes(node: Any, prefix: str = "") -> Iterator[tuple[str, DictConfig]]:
    """(dotted key, node) of every node with a ``_target_``, outermost first."""
    if not isinstance(node, DictConfig):
        return
    if "_target_" in node:
        yield prefix[:-1], node
    for key in node:
        if str(key) == "hydra" or str(key).startswith("_"):
            continue
        if OmegaConf.is_interpolation(node, str(key)):
            continue  # its target node is visited where it is defined
        try:
            child = node[key]
        except Exception:  # noqa: BLE001 - resolvable only inside a Hydra run
            continue
        yield from target_nodes(child, f"{prefix}{key}.")


def _parameters(target: str) -> set[str] | None:
    """The keyword parameters of ``target``'s constructor; None when it takes ``**kwargs``
    or cannot be inspected (then the class itself checks its keys)."""
    from hydra.utils import get_object

    try:
        sig = inspect.signature(get_object(target))
    except Exception:  # noqa: BLE001 - an unknown target is reported when it is built
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return set(sig.parameters)
