"""Type and range checks of the composed config, before any data is read.

Hydra passes a command-line value through as whatever it parses to: ``data.batch_size=abc`` is a
string, ``tta=no`` a (truthy) string. Each value is checked here against what the option
means, and a wrong one stops the run with a message naming the key.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from maskcls.errors import ConfigError

# Options that are booleans wherever they appear in the config tree (matched by leaf name).
BOOLEAN_KEYS = frozenset({
    "pretrained", "channels_last", "sync_batchnorm", "nesterov", "weighted",
    "resample_each_epoch", "verify", "tta", "save_probs", "calibrate", "allow_failures", "smote",
    "overwrite",
    "benchmark", "enable_progress_bar", "enable_model_summary", "inference_mode",
    "use_distributed_sampler",
})

# key: (kind, low, high, optional). kind "int" or "number"; low/high inclusive unless the
# bound is given as ("open", value). Options whose own module checks them (the split, the
# sampler, the losses, the augmentation, the image size) are not repeated here.
RANGES: dict[str, tuple[str, Any, Any, bool]] = {
    "seed": ("int", 0, 2**32 - 1, False),
    "data.batch_size": ("int", 1, None, False),
    "data.split_seed": ("int", 0, 2**32 - 1, False),
    "trainer.max_epochs": ("int", 1, None, False),
    "trainer.accumulate_grad_batches": ("int", 1, None, False),
    "trainer.gradient_clip_val": ("number", 0, None, True),
    "trainer.check_val_every_n_epoch": ("int", 1, None, True),
    "trainer.log_every_n_steps": ("int", 1, None, True),
    "optimizer.lr": ("number", ("open", 0), None, False),
    "optimizer.weight_decay": ("number", 0, None, True),
    "optimizer.momentum": ("number", 0, ("open", 1), True),
    "scheduler.warmup_epochs": ("int", 0, None, True),
    "scheduler.scheduler.step_size": ("int", 1, None, True),
    "scheduler.scheduler.T_max": ("int", 1, None, True),
    "scheduler.scheduler.patience": ("int", 0, None, True),
    "scheduler.scheduler.gamma": ("number", ("open", 0), 1, True),
    "model.drop_rate": ("number", 0, ("open", 1), True),
    # predict.py
    "batch_size": ("int", 1, None, False),
    "num_workers": ("int", 0, None, False),
}


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, DictConfig):
        for key in node:
            if str(key).startswith("_"):
                continue
            try:
                child = node[key]
            except Exception:  # noqa: BLE001 - missing, or resolvable only inside a Hydra run
                continue
            yield from _leaves(child, f"{prefix}{key}.")
    elif not isinstance(node, ListConfig):
        yield prefix[:-1], node


def _bound(bound: Any) -> tuple[float, bool]:
    """(value, closed) of a bound written ``v`` (closed) or ``("open", v)``."""
    if isinstance(bound, tuple):
        return bound[1], False
    return bound, True


def check_value(key: str, value: Any, kind: str, low: Any = None, high: Any = None,
                optional: bool = False) -> None:
    """``value`` of option ``key`` is an ``int`` / ``number`` within ``[low, high]`` (a bound
    written ``("open", v)`` excludes ``v``); None only when ``optional``."""
    if value is None and optional:
        return
    types = (int,) if kind == "int" else (int, float)
    what = "an integer" if kind == "int" else "a number"
    lo, lo_closed = _bound(low) if low is not None else (-math.inf, True)
    hi, hi_closed = _bound(high) if high is not None else (math.inf, True)
    ok = isinstance(value, types) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= lo if lo_closed else value > lo)
    ok = ok and (value <= hi if hi_closed else value < hi)
    if not ok:
        if high is None:
            span = f">= {lo}" if lo_closed else f"> {lo}"
        elif kind == "int" and lo_closed and hi_closed:
            span = f"in {lo}..{hi}"
        else:
            span = "in " + ("[" if lo_closed else "(") + f"{lo}, {hi}" + ("]" if hi_closed else ")")
        none = " or null" if optional else ""
        raise ConfigError(f"{key} must be {span}, got {value!r} (expected {what}{none})")


def check_values(cfg: DictConfig) -> None:
    """Check every known option present in ``cfg`` (train or predict config)."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        hints = {"data.root": "data.root=/path/to/data (the folder holding train/ and eval/)",
                 "ckpt": "ckpt=outputs/<date>/<time> (a run, a multirun folder or a .ckpt)"}
        raise ConfigError(f"{', '.join(missing)} must be given on the command line, e.g. "
                          + "; ".join(hints.get(k, f"{k}=...") for k in missing))
    for key, (kind, low, high, optional) in RANGES.items():
        node = OmegaConf.select(cfg, key, default="<absent>", throw_on_missing=False)
        if isinstance(node, str) and node == "<absent>":
            continue
        check_value(key, node, kind, low, high, optional)
    for key, value in _leaves(cfg):
        if key.rsplit(".", 1)[-1] in BOOLEAN_KEYS and not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
    deterministic = OmegaConf.select(cfg, "trainer.deterministic", default=None)
    if deterministic is not None and not isinstance(deterministic, bool) \
            and deterministic != "warn":
        raise ConfigError(f"trainer.deterministic must be true, false or warn, got "
                          f"{deterministic!r}")
    _check_trainer(cfg)
    mode = OmegaConf.select(cfg, "monitor_mode", default="max")
    if mode not in ("max", "min"):
        raise ConfigError(f"monitor_mode must be max or min, got {mode!r}")


def precisions() -> tuple[str, ...]:
    """The precisions Lightning's Trainer takes, from Lightning's own type."""
    from typing import get_args

    from lightning_fabric.plugins.precision.precision import (
        _PRECISION_INPUT_STR,
        _PRECISION_INPUT_STR_ALIAS,
    )

    return get_args(_PRECISION_INPUT_STR) + get_args(_PRECISION_INPUT_STR_ALIAS)


def _check_trainer(cfg: DictConfig) -> None:
    """The Trainer options Lightning would only reject when it is built, after the data."""
    if OmegaConf.select(cfg, "trainer", default=None) is None:
        return
    precision = cfg.trainer.get("precision")
    known = precisions()
    if precision is not None and str(precision) not in known:
        raise ConfigError(f"trainer.precision must be one of {', '.join(known)}, got "
                          f"{precision!r}")
    max_time = cfg.trainer.get("max_time")
    if max_time is not None and not _is_duration(max_time):
        raise ConfigError(f"trainer.max_time must be DD:HH:MM:SS (e.g. 00:12:00:00 for 12 hours) "
                          f"or {{days, hours, minutes, seconds}}, got {max_time!r}")
    fast = cfg.trainer.get("fast_dev_run", False)
    if not isinstance(fast, bool):
        check_value("trainer.fast_dev_run", fast, "int", 0)
    devices = cfg.trainer.get("devices", "auto")
    ok = devices == "auto" or (isinstance(devices, int) and not isinstance(devices, bool)
                               and (devices >= 1 or devices == -1))
    ok = ok or (isinstance(devices, ListConfig | list) and len(devices) > 0
                and all(isinstance(d, int) and not isinstance(d, bool) for d in devices))
    ok = ok or (isinstance(devices, str) and all(p.strip().isascii() and p.strip().isdigit()
                                                 for p in devices.split(",")))
    if not ok:
        raise ConfigError(f"trainer.devices must be auto, a count >= 1 (-1: all) or a list of "
                          f"device ids, got {devices!r}")


def _is_duration(value: Any) -> bool:
    """What Lightning's ``max_time`` takes: ``DD:HH:MM:SS`` or a mapping of time units."""
    if isinstance(value, str):
        parts = value.split(":")
        return len(parts) == 4 and all(p.isascii() and p.isdigit() for p in parts)
    if isinstance(value, DictConfig | dict):
        units = {"weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds"}
        return bool(value) and set(value) <= units and all(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
            for v in value.values())
    return False


def check_accelerator(accelerator: Any, devices: Any = 1, key: str = "trainer.accelerator"
                      ) -> None:
    """A GPU asked for must be there, in the number asked for."""
    import torch

    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}={accelerator} but no CUDA GPU is visible to PyTorch "
                              "(torch.cuda.is_available() is False); use "
                              f"{key}=auto (CPU here) or {key}=cpu")
        if isinstance(devices, int) and not isinstance(devices, bool) \
                and devices > torch.cuda.device_count():
            raise ConfigError(f"trainer.devices={devices} but only {torch.cuda.device_count()} "
                              "GPU(s) are visible")
    elif accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{key}=mps but the Apple GPU (MPS) is not available; use {key}=auto")
    elif not isinstance(accelerator, str):
        raise ConfigError(f"{key} must be auto, cpu or gpu, got {accelerator!r}")


# Groups every training run composes; ``~group`` on the command line removes one.
REQUIRED_GROUPS = {"data": "data=synthetic", "model": "model=resnet18", "loss": "loss=ce",
                   "optimizer": "optimizer=adamw", "trainer": "trainer=default"}


def check_known_keys(cfg: DictConfig) -> None:
    """Every group a run needs is there, and every key of a node that builds a class is a
    parameter of that class: a typo (``+data.imagesize``, ``+trainer.max_epoch``) is named
    with the closest real key before any data is read, not deep inside the class."""
    for group, example in REQUIRED_GROUPS.items():
        if not isinstance(cfg.get(group), DictConfig):
            raise ConfigError(f"{group}: the group is missing (removed with ~{group}?); every "
                              f"run needs one, e.g. {example}")
    for key, node in _target_nodes(cfg):
        params = _parameters(str(node._target_))
        if params is None:
            continue
        for name in node:
            name = str(name)
            if name.startswith("_") or name in params:
                continue
            close = difflib.get_close_matches(name, sorted(params), n=1, cutoff=0.6)
            hint = f"; did you mean {key}.{close[0]}?" if close else \
                f"; its keys: {', '.join(sorted(p for p in params if p != 'self'))}"
            raise ConfigError(f"{key}.{name} is not a setting of {key} "
                              f"({str(node._target_).rsplit('.', 1)[-1]}){hint}")


def _target_nodes(node: Any, prefix: str = "") -> Iterator[tuple[str, DictConfig]]:
    if not isinstance(node, DictConfig):
        return
    if "_target_" in node:
        yield prefix[:-1], node
    for key in node:
        if str(key) == "hydra" or str(key).startswith("_"):
            continue
        try:
            child = node[key]
        except Exception:  # noqa: BLE001 - resolvable only inside a Hydra run
            continue
        yield from _target_nodes(child, f"{prefix}{key}.")


def _parameters(target: str) -> set[str] | None:
    """The keyword parameters of ``target``'s constructor; None when it takes ``**kwargs``
    or cannot be inspected (then the class itself checks its keys)."""
    import inspect

    from hydra.utils import get_object

    try:
        obj = get_object(target)
        sig = inspect.signature(obj)
    except Exception:  # noqa: BLE001 - an unknown target is reported when it is built
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return set(sig.parameters)
