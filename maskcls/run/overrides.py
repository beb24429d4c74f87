"""Command-line overrides read before Hydra does, each mistake answered in one line: a value
Hydra's grammar cannot take as it is written (``=`` inside it, a comma outside a sweep, a
non-ASCII letter) gets the quoting that works; a group option that does not exist, or a key
the composed config does not have, gets the closest ones."""

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


def _composable(argv: Sequence[str]) -> list[str]:
    """The overrides to compose: flags and ``hydra`` keys left to Hydra, a sweep reduced to
    its first value (one composition stands for every job's)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    kept = []
    for arg in argv:
        key = arg.partition("=")[0].lstrip("+~")
        if arg.startswith("-") or "=" not in arg and not arg.startswith("~") or \
                key.startswith("hydra"):
            continue
        override = parser.parse_overrides([arg])[0]
        if override.is_sweep_override():
            try:
                first = next(iter(override.sweep_string_iterator()))
            except Exception:  # noqa: BLE001 - interval()/choice() of a sweeper: Hydra's to read
                continue
            arg = f"{arg.split('=', 1)[0]}={first}"
        kept.append(arg)
    return kept


def key_error(argv: Sequence[str], conf_dir: Path, config_name: str) -> str | None:
    """The ``error: ...`` line for an override of a key the composed config does not have
    (``data.imagesize=...``, without ``+``), naming the closest key; Hydra's own answer is a
    seven-line block that suggests ``+data.imagesize``, which only moves the typo along."""
    import difflib

    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException
    from omegaconf import DictConfig, OmegaConf

    overrides = _composable(argv)
    with initialize_config_dir(str(conf_dir.resolve()), version_base="1.3"):
        try:
            compose(config_name, overrides=overrides)
            return None
        except ConfigCompositionException as e:
            bad = getattr(e.__cause__, "full_key", None)
            if not bad:
                return None  # another composition error: Hydra words it
            rest = [o for o in overrides if o.partition("=")[0].lstrip("+~") != bad]
            try:
                base = compose(config_name, overrides=rest)
            except ConfigCompositionException:
                return None
    parent, _, leaf = str(bad).rpartition(".")
    node = OmegaConf.select(base, parent) if parent else base
    keys = sorted(str(k) for k in node if not str(k).startswith("_")) \
        if isinstance(node, DictConfig) else []
    close = difflib.get_close_matches(leaf, keys, n=1, cutoff=0.6)
    where = f"{parent}." if parent else ""
    hint = f"did you mean {where}{close[0]}?" if close else \
        f"its keys: {', '.join(keys)}; a key it lacks is added as +{bad}=..."
    return f"error: {bad} is not a setting of {parent or config_name}; {hint}"


def described_help(conf_dir: Path, config_name: str) -> str:
    """``--help`` of a command whose config is one file (predict, export): the file's help
    template with every option as written there, its default and its comment (Hydra's own
    ``$CONFIG`` drops the comments)."""
    from omegaconf import OmegaConf

    path = conf_dir / f"{config_name}.yaml"
    text = path.read_text()
    template = str(OmegaConf.select(OmegaConf.create(text), "hydra.help.template") or "$CONFIG")
    lines = text.split("\ndefaults:", 1)[0].splitlines()
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)  # the usage line: the template says it
    while lines and (lines[-1].startswith("#") or not lines[-1].strip()):
        lines.pop()  # the note about what the command writes
    return template.replace("$CONFIG", "\n".join(lines))


def check_argv(argv: Sequence[str], conf_dir: Path, config_name: str = "train") -> None:
    """Exit with the one-line error of the first unreadable override, if any; a single-file
    command's ``--help`` is answered here, with each option's description."""
    if config_name != "train" and any(a in ("--help", "-h") for a in argv):
        print(described_help(conf_dir, config_name))
        raise SystemExit(0)
    bad = quoting_error(argv) or group_error(argv, conf_dir) or \
        key_error(argv, conf_dir, config_name)
    if bad is not None:
        raise SystemExit(bad)
