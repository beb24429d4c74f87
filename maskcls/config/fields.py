"""What a schema field may hold beyond its type, declared beside the field, and the one
function that words a wrong value.

OmegaConf checks a field's type (``int``, ``float``, ``bool``, ``str``, lists of them) and
refuses keys a schema does not have; a range, a fixed set of choices or a rule for a value
of several types (``trainer.devices``: ``auto``, a count or a list) is written with the field:

    batch_size: int = ranged(64, low=1)
    monitor_mode: str = choice("max", "max", "min")
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from typing import Any

from maskcls.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Open:
    """An exclusive bound: ``ranged(1e-3, low=Open(0))`` means ``> 0``."""

    value: float


def ranged(default: Any, low: float | Open | None = None, high: float | Open | None = None,
           *, integer: bool | None = None, optional: bool = False) -> Any:
    """A field whose value is a number within ``[low, high]`` (``Open(v)``: excluding ``v``);
    ``integer`` defaults to the type of ``default``; ``optional`` admits null."""
    kind = "int" if (integer if integer is not None else isinstance(default, int)) else "number"
    return dataclasses.field(default=default, metadata={
        "range": (kind, low, high, optional)})


def choice(default: str, *choices: str) -> Any:
    """A field that takes one of ``choices``."""
    return dataclasses.field(default=default, metadata={"choices": choices})


def checked(default: Any, check: Callable[[str, Any], None]) -> Any:
    """A field checked by ``check(key, value)`` (values OmegaConf cannot type: a union)."""
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default),
                                 metadata={"check": check})
    return dataclasses.field(default=default, metadata={"check": check})


def check_value(key: str, value: Any, kind: str, low: Any = None, high: Any = None,
                optional: bool = False) -> None:
    """``value`` of option ``key`` is an ``int`` / ``number`` within ``[low, high]`` (an
    ``Open`` bound excludes its value); None only when ``optional``."""
    if value is None and optional:
        return
    types = (int,) if kind == "int" else (int, float)
    what = "an integer" if kind == "int" else "a number"
    lo, lo_closed = _bound(low, -math.inf)
    hi, hi_closed = _bound(high, math.inf)
    ok = isinstance(value, types) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= lo if lo_closed else value > lo)
    ok = ok and (value <= hi if hi_closed else value < hi)
    if ok:
        return
    if high is None:
        span = f">= {lo}" if lo_closed else f"> {lo}"
    elif kind == "int" and lo_closed and hi_closed:
        span = f"in {lo}..{hi}"
    else:
        span = "in " + ("[" if lo_closed else "(") + f"{lo}, {hi}" + ("]" if hi_closed else ")")
    none = " or null" if optional else ""
    raise ConfigError(f"{key} must be {span}, got {value!r} (expected {what}{none})")


def _bound(bound: Any, unbounded: float) -> tuple[float, bool]:
    if bound is None:
        return unbounded, True
    if isinstance(bound, Open):
        return bound.value, False
    return bound, True


def check_field(key: str, field: dataclasses.Field, value: Any) -> None:
    """The rule written beside ``field`` (range, choices or check), for its value."""
    meta = field.metadata
    if "range" in meta:
        check_value(key, value, *meta["range"])
    elif "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{key} must be one of {', '.join(meta['choices'])}, got {value!r}")
    elif "check" in meta:
        meta["check"](key, value)


def type_words(field: dataclasses.Field) -> str:
    """How a field's type is named in an error: "an integer", "true or false", ..."""
    if "range" in field.metadata:
        return "an integer" if field.metadata["range"][0] == "int" else "a number"
    kind, optional = field.type, False
    if typing.get_origin(kind) in (typing.Union, types.UnionType):  # X | None
        kind, optional = next(a for a in typing.get_args(kind) if a is not type(None)), True
    words = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if typing.get_origin(kind) is list:
        inner = typing.get_args(kind)[0] if typing.get_args(kind) else Any
        text = "a list of " + {int: "integers", float: "numbers", str: "strings"}.get(
            inner, "values")
    else:
        text = words.get(kind, "a value of another type")
    return text + (" or null" if optional else "")
