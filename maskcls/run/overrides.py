"""Command-line overrides read before Hydra does, each mistake answered in one line: a value
Hydra's grammar cannot take as it is written (``=`` inside it, a comma outside a sweep, a
non-ASCII letter) gets the quoting that works; a group option that does not exist gets the
closest ones."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path


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


def group_error(argv: Sequence[str], conf_dir: Path) -> str | None:
    """The ``error: ...`` line for the first ``group=option`` whose option is not a file of
    ``conf/<group>/`` (``model=resnet19``, ``loss=facal``), naming the closest options; Hydra's
    own answer is a 16-line block."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        group = key.lstrip("+~")
        # hydra/... groups also take options from installed plugins (hydra/launcher=joblib)
        if not sep or "." in group or "@" in group or group.startswith("hydra") or \
                not (conf_dir / group).is_dir():
            continue
        options = sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))
        choices = [v.strip() for v in value.strip("[]").split(",")] if value else []
        for choice in choices:
            if choice in options or choice in ("null", ""):
                continue
            close = difflib.get_close_matches(choice, options, n=2, cutoff=0.5)
            hint = f"did you mean {' or '.join(f'{group}={c}' for c in close)}? " if close else ""
            return (f"error: {group}={choice} is not an option of {group}; {hint}"
                    f"options: {', '.join(options)} (conf/{group}/)")
    return None


def check_argv(argv: Sequence[str], conf_dir: Path) -> None:
    """Exit with the one-line error of the first unreadable override, if any."""
    bad = quoting_error(argv) or group_error(argv, conf_dir)
    if bad is not None:
        raise SystemExit(bad)
