"""Whether a benchmark's finished run may be scored again: only if it was trained with the
config its overrides compose to today. A run kept from before an experiment changed (``quick``
on another backbone) would otherwise be scored as the new recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RUN, TREE = "<run>", "<tree>"


def trained_as(run: Path, overrides: list[str]) -> bool:
    """True if ``run/config.yaml`` records the config ``train.py`` composes from
    ``overrides`` now (``hydra.*`` overrides aside), wherever the run folder has moved since;
    the machine's ``paths`` are not compared."""
    recorded = _recorded(run)
    if recorded is None:
        return False
    config, root = recorded
    wanted = _root(overrides)
    if wanted and (root is None or Path(root).resolve() != Path(wanted).resolve()):
        return False  # trained on another tree
    return config == _composed(overrides, bool(wanted))


def _root(overrides: list[str]) -> str | None:
    roots = [o.partition("=")[2] for o in overrides if o.startswith("data.root=")]
    return roots[-1] if roots else None


def _composed(overrides: list[str], has_root: bool) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    kept = [o for o in overrides if not o.startswith(("hydra.", "data.root="))]
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*kept, f"paths.output_dir='{RUN}'",
                                          *([f"data.root='{TREE}'"] if has_root else [])])
    return _placeheld(OmegaConf.to_container(cfg, resolve=True), {})


def _recorded(run: Path) -> tuple[dict[str, Any], str | None] | None:
    from omegaconf import OmegaConf

    try:
        cfg = OmegaConf.to_container(OmegaConf.load(run / "config.yaml"), resolve=True)
    except Exception:  # noqa: BLE001 - missing or unreadable: nothing to reuse
        return None
    places = {}
    out = cfg.get("paths", {}).get("output_dir")  # as recorded, where the run was trained
    if out:
        places[str(out)] = RUN
    root = cfg.get("data", {}).get("root")
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
