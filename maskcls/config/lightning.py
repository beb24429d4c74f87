"""Rules for Trainer options whose value may be of several types, which OmegaConf cannot type:
the values Lightning would only refuse once the Trainer is built, after the data."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig

from maskcls.config.fields import check_value
from maskcls.errors import ConfigError


def precisions() -> tuple[str, ...]:
    """The precisions Lightning's Trainer takes, from Lightning's own type."""
    from typing import get_args

    from lightning_fabric.plugins.precision.precision import (
        _PRECISION_INPUT_STR,
        _PRECISION_INPUT_STR_ALIAS,
    )

    return get_args(_PRECISION_INPUT_STR) + get_args(_PRECISION_INPUT_STR_ALIAS)


def check_precision(key: str, value: Any) -> None:
    known = precisions()
    if value is not None and str(value) not in known:
        raise ConfigError(f"{key} must be one of {', '.join(known)}, got {value!r}")


def check_max_time(key: str, value: Any) -> None:
    """``DD:HH:MM:SS`` or a mapping of time units, as Lightning's ``max_time`` takes."""
    if value is None:
        return
    if isinstance(value, str):
        parts = value.split(":")
        ok = len(parts) == 4 and all(p.isascii() and p.isdigit() for p in parts)
    elif isinstance(value, DictConfig | dict):
        units = {"weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds"}
        ok = bool(value) and set(value) <= units and all(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
            for v in value.values())
    else:
        ok = False
    if not ok:
        raise ConfigError(f"{key} must be DD:HH:MM:SS (e.g. 00:12:00:00 for 12 hours) "
                          f"or {{days, hours, minutes, seconds}}, got {value!r}")


def check_fast_dev_run(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        check_value(key, value, "int", 0)


def check_devices(key: str, value: Any) -> None:
    ok = value == "auto" or (isinstance(value, int) and not isinstance(value, bool)
                             and (value >= 1 or value == -1))
    ok = ok or (isinstance(value, ListConfig | list) and len(value) > 0
                and all(isinstance(d, int) and not isinstance(d, bool) for d in value))
    ok = ok or (isinstance(value, str) and all(p.strip().isascii() and p.strip().isdigit()
                                               for p in value.split(",")))
    if not ok:
        raise ConfigError(f"{key} must be auto, a count >= 1 (-1: all) or a list of "
                          f"device ids, got {value!r}")


def check_deterministic(key: str, value: Any) -> None:
    if value is not None and not isinstance(value, bool) and value != "warn":
        raise ConfigError(f"{key} must be true, false or warn, got {value!r}")


def check_accelerator(key: str, accelerator: Any, devices: Any = 1) -> None:
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
