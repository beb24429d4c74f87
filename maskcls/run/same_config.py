"""Whether a finished run was trained with the config its overrides compose to today.

A run kept from before ``conf/`` changed (``experiment=quick`` on another backbone) must not be
taken for today's recipe: a submission resumed after such a change would ensemble folds of
two recipes, a benchmark would score the old one under the new name. ``differences`` compares
the run's ``config.yaml`` with what ``train.py`` composes from the same overrides now, with the
run's folder and data tree written as placeholders (a moved run still counts) and the
machine's ``paths`` left out.
"""

from __future__ import annotations

import inspect
from functools import cache
from pathlib import Path
from typing import Any

from maskcls.run.folder import CONFIG

RUN, TREE = "<run>", "<tree>"
CONF = Path(__file__).resolve().parents[2] / "conf"


def trained_as(run: Path, overrides: list[str]) -> bool:
    """True if ``run`` records the config ``overrides`` compose now (``differences`` is [])."""
    return differences(run, overrides) == []


def differences(run: Path, overrides: list[str]) -> list[str] | None:
    """The keys (dotted, ``data.root`` for another tree) whose value in ``run/config.yaml``
    is not the one ``overrides`` compose now, as ``key: <then> then, <now> now``; [] when
    they are the same, None when the run records no readable config. ``hydra.*`` overrides
    are left aside."""
    recorded = _recorded(run)
    if recorded is None:
        return None
    config, root = recorded
    wanted = _root(overrides)
    if wanted and (root is None or Path(root).resolve() != Path(wanted).resolve()):
        return [f"data.root: {root} then, {wanted} now"]
    return _diff(config, _composed(overrides, bool(wanted)))


def _root(overrides: list[str]) -> str | None:
    roots = [o.partition("=")[2] for o in overrides if o.startswith("data.root=")]
    return roots[-1] if roots else None


def _composed(overrides: list[str], has_root: bool) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    kept = [o for o in overrides if not o.startswith(("hydra.", "data.root="))]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*kept, f"paths.output_dir='{RUN}'",
                                          *([f"data.root='{TREE}'"] if has_root else [])])
    return _placeheld(OmegaConf.to_container(cfg, resolve=True), {})


def _recorded(run: Path) -> tuple[dict[str, Any], str | None] | None:
    from omegaconf import OmegaConf

    try:
        # saved resolved; an interpolation (an edited file) stays text, a difference
        cfg = OmegaConf.to_container(OmegaConf.load(run / CONFIG), resolve=False)
    except Exception:  # noqa: BLE001 - missing or unreadable: nothing to compare
        return None
    if not isinstance(cfg, dict):
        return None
    places = {}
    out = (cfg.get("paths") or {}).get("output_dir")  # as recorded, where it was trained
    if out:
        places[str(out)] = RUN
    root = (cfg.get("data") or {}).get("root")
    if root:
        places[str(root)] = TREE
    return _placeheld(cfg, places), root


def _placeheld(cfg: dict[str, Any], places: dict[str, str]) -> dict[str, Any]:
    """``cfg`` without the machine's ``paths``, each of ``places`` written as its placeholder."""
    def swap(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        if isinstance(v, str):
            for path, name in places.items():
                v = v.replace(path, name)
        return v

    return swap({k: v for k, v in cfg.items() if k != "paths"})


def _diff(then: Any, now: Any, key: str = "") -> list[str]:
    if not (isinstance(then, dict) and isinstance(now, dict)):
        return [] if then == now else [f"{key}: {then!r} then, {now!r} now"]
    defaults = _defaults(now.get("_target_"))
    out = []
    for k in sorted(set(then) | set(now), key=str):
        if k not in then and k in defaults and defaults[k] == now[k]:
            continue  # a setting added since, at the value the run's class took without it
        out += _diff(then.get(k, "<absent>"), now.get(k, "<absent>"),
                     f"{key}.{k}" if key else str(k))
    return out


@cache
def _defaults(target: str | None) -> dict[str, Any]:
    """The keyword defaults of a ``_target_`` of today's ``conf/`` (none if it cannot be read)."""
    if not isinstance(target, str):
        return {}
    from hydra.utils import get_object

    try:
        params = inspect.signature(get_object(target)).parameters.values()
    except Exception:  # noqa: BLE001 - no defaults known: every added key is a difference
        return {}
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
