"""Command-line overrides read before Hydra does: a value Hydra's grammar cannot take as it is
written (``=`` inside it, a comma outside a sweep, a non-ASCII letter) gets one line showing the
quoting that works, instead of Hydra's lexer error."""

from __future__ import annotations

from collections.abc import Sequence


def quoting_error(argv: Sequence[str]) -> str | None:
    """The ``error: ...`` line for the first override Hydra would refuse to read; None when
    every override reads. ``-m``/``--multirun`` makes a comma a sweep, as in Hydra."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    multirun = any(a in ("-m", "--multirun") for a in argv)
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, _, value = arg.partition("=")
        try:
            override = parser.parse_overrides([arg])[0]
        except OverrideParseException:
            pass
        else:
            if multirun or not override.is_sweep_override() or value.startswith(("[", "{")):
                continue
        return (f"error: {key}={value} cannot be read as one value: Hydra reads , = and "
                "non-ASCII letters as syntax. Quote the value inside the argument, e.g. "
                f"\"{key}='{value}'\"")
    return None
