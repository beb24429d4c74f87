"""Whether a finished run was trained with the config its overrides compose to today.

A run kept from before ``conf/`` changed (``experiment=quick`` on another backbone) must not be
taken for today's recipe: a submission resumed after such a change would ensemble folds of
two recipes, a benchmark would score the old one under the new name. ``differences`` compares
the run's ``config.yaml`` with what ``train.py`` composes from the same overrides now, settled
as ``train.py`` settles it (input paths made absolute from the working folder), with the run's
folder, the data tree and every ``paths`` folder written as placeholders (a moved run still
counts, and ``data.cache_dir`` under ``paths.data_dir`` is the same key wherever it resolved)
and the machine's ``paths`` themselves left out.
"""

from __future__ import annotations

import inspect
from functools import cache
from pathlib import Path
from typing import Any

from maskcls.run.folder import CONFIG, LAST_CKPT, rehomed

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
    composed, wanted = _composed(overrides)
    if any(o.startswith("data.root=") for o in overrides) and (
            root is None or Path(root).resolve() != Path(str(wanted)).resolve()):
        return [f"data.root: {root} then, {wanted} now"]
    return _diff(config, composed)


def _composed(overrides: list[str]) -> tuple[dict[str, Any], str | None]:
    """What ``overrides`` compose now, settled as a run settles it, and its data root."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from maskcls.run.inputs import settle

    kept = [o for o in overrides if not o.startswith("hydra.")]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*kept, f"paths.output_dir='{RUN}'"])
    settle(cfg)
    container = OmegaConf.to_container(cfg, resolve=True)
    return _placeheld(container, _places(container)), (container.get("data") or {}).get("root")


def _recorded(run: Path) -> tuple[dict[str, Any], str | None] | None:
    from omegaconf import OmegaConf

    try:
        # saved resolved; an interpolation (an edited file) stays text, a difference
        cfg = OmegaConf.to_container(OmegaConf.load(run / CONFIG), resolve=False)
    except Exception:  # noqa: BLE001 - missing or unreadable: nothing to compare
        return None
    if not isinstance(cfg, dict):
        return None
    held = _placeheld(cfg, _places(cfg))
    if held.get("ckpt_path") == f"{RUN}/{LAST_CKPT}":
        held["ckpt_path"] = None  # it was resumed in place (resume=): the same run, continued
    return held, (cfg.get("data") or {}).get("root")


def _places(cfg: dict[str, Any]) -> dict[str, str]:
    """The folders of ``cfg`` that are the machine's or the run's, each with its placeholder:
    every ``paths`` folder, the run's own (``paths.output_dir``) and the data tree."""
    paths = cfg.get("paths") or {}
    places = {str(v): f"<paths.{k}>" for k, v in paths.items() if isinstance(v, str) and v}
    if paths.get("output_dir"):
        places[str(paths["output_dir"])] = RUN
    root = (cfg.get("data") or {}).get("root")
    if isinstance(root, str) and root:
        places[root] = TREE
    return places


def _placeheld(cfg: dict[str, Any], places: dict[str, str]) -> dict[str, Any]:
    """``cfg`` without the machine's ``paths``, a value that is one of ``places`` or lies
    under it written with its placeholder (the longest first: a run folder under a paths one)."""
    def swap(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        return rehomed(v, places) if isinstance(v, str) else v

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
