"""README.md and docs/ cannot drift from the code: every command in their code blocks is read
as the program would read it (Hydra overrides composed against conf/, argparse flags parsed,
make targets and scripts looked up), and every relative link and picture exists."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT

from maskcls.run.overrides import group_error, key_error, quoting_error

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
HYDRA_COMMANDS = {"train.py": "train", "predict.py": "predict", "maskcls.export": "export"}


def commands(md: Path) -> Iterator[tuple[int, str]]:
    """(line number, command) for every ``python ...``, ``make ...`` or ``bash ...`` line of the
    file's fenced code blocks, with ``\\`` continuations joined."""
    in_code, pending, start = False, "", 0
    for n, line in enumerate(md.read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            in_code, pending = not in_code, ""
            continue
        if not in_code:
            continue
        if pending:
            pending += " " + stripped
        elif stripped.startswith(("python ", "make ", "bash ")):
            pending, start = stripped, n
        if pending and pending.endswith("\\"):
            pending = pending[:-1]
            continue
        if pending:
            yield start, pending
            pending = ""


class _Parsed(Exception):
    """Raised by the patched ``parse_args``: the flags were read, nothing runs."""


def _dry_parse(module: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> str | None:
    real = argparse.ArgumentParser.parse_args
    real_intermixed = argparse.ArgumentParser.parse_intermixed_args

    def parse_only(self, argv=None, namespace=None):
        real(self, argv, namespace)
        raise _Parsed

    def parse_intermixed_only(self, argv=None, namespace=None):
        real_intermixed(self, argv, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_intermixed_args", parse_intermixed_only)
    name = module if importlib.util.find_spec(module).submodule_search_locations is None \
        else f"{module}.__main__"
    try:
        importlib.import_module(name).main(args)
    except _Parsed:
        return None
    except SystemExit as e:
        return f"{module} refused {shlex.join(args)} (exit {e.code})"
    finally:
        monkeypatch.setattr(argparse.ArgumentParser, "parse_args", real)
        monkeypatch.setattr(argparse.ArgumentParser, "parse_intermixed_args", real_intermixed)
    return f"{module} ran instead of only parsing its flags"


def _overrides_error(args: list[str], config: str) -> str | None:
    from hydra import compose, initialize_config_dir

    from maskcls.config import ExportSettings, PredictSettings, TrainConfig, validate
    from maskcls.errors import ConfigError
    from maskcls.run.overrides import _composable

    conf = ROOT / "conf"
    bad = quoting_error(args) or group_error(args, conf) or key_error(args, conf, config)
    if bad:
        return bad
    with initialize_config_dir(str(conf), version_base="1.3"):
        cfg = compose(config, overrides=_composable(args))
    schema = {"train": TrainConfig, "predict": PredictSettings, "export": ExportSettings}[config]
    try:  # types, ranges and +keys, as the command checks them (paths left to the reader)
        validate(cfg, schema, given=False)
    except ConfigError as e:
        return str(e)
    return None


def check_command(command: str, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """What is wrong with ``command`` as the docs give it, or None (read as on a machine with
    GPUs: the docs' GPU recipe asks for one)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    words = shlex.split(command, comments=True)
    tool, rest = words[0], words[1:]
    if tool == "make":
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M)
        missing = [t for t in rest if "=" not in t and t not in targets]
        return f"make has no target {missing[0]}" if missing else None
    if tool == "bash":
        return None if (ROOT / rest[0]).is_file() else f"{rest[0]} does not exist"
    if rest[:1] == ["-m"]:
        module, args = rest[1], rest[2:]
        if module in HYDRA_COMMANDS:
            return _overrides_error(args, HYDRA_COMMANDS[module])
        if importlib.util.find_spec(module) is None:
            return f"no module {module}"
        bad = _dry_parse(module, args, monkeypatch)
        if bad is None and module in ("maskcls.preview", "maskcls.submit"):  # train.py's words
            bad = _overrides_error([a for a in args if "=" in a and not a.startswith("-")],
                                   "train")
        return bad
    script = rest[0]
    if script not in HYDRA_COMMANDS:
        return f"{script}: not a command of this project"
    return _overrides_error([a for a in rest[1:] if a not in ("--help", "-h")],
                            HYDRA_COMMANDS[script])


def _slug(heading: str) -> str:
    """The anchor a code host gives a markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def broken_links(md: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", md.read_text(), flags=re.S)
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not this repository's
        path, _, anchor = target.partition("#")
        file = (md.parent / path).resolve() if path else md
        if not file.exists():
            bad.append(f"{md.name}: {target} does not exist")
        elif anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", file.read_text(),
                                                     flags=re.S), re.M)
            if anchor not in {_slug(h) for h in headings}:
                bad.append(f"{md.name}: {target}: no heading #{anchor}")
    return bad


CASES = [(md, n, cmd) for md in DOCS for n, cmd in commands(md)]


@pytest.mark.parametrize(("md", "line", "command"), CASES,
                         ids=[f"{md.name}:{n}" for md, n, _ in CASES])
def test_every_documented_command_reads(md, line, command, monkeypatch):
    bad = check_command(command, monkeypatch)
    assert bad is None, f"{md.name}:{line}: {command}\n  {bad}"


@pytest.mark.parametrize("md", DOCS, ids=[md.name for md in DOCS])
def test_every_link_and_picture_exists(md):
    assert broken_links(md) == []


def test_the_readme_is_short_and_opens_with_the_gpu_recipe():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    first_screen = "\n".join(lines[:45])
    for needle in ("experiment=competition", "model.pretrained", "'data.fold=range(5)'",
                   "predict.py", "tta=true calibrate=true", "submission.csv", "make install"):
        assert needle in first_screen, needle


def test_the_checks_catch_a_renamed_key_a_wrong_flag_and_a_broken_link(tmp_path, monkeypatch):
    doc = tmp_path / "page.md"
    doc.write_text("See [the data](data.md#nowhere) and ![a picture](gone.png).\n\n"
                   "```bash\n"
                   "python train.py data.imagesize=[96,72]\n"
                   "python train.py -m loss=ce,facal\n"
                   "python predict.py ckpt=RUN tta=true calibrat=true\n"
                   "python train.py +data.image_sise=[96,72]\n"
                   "python -m maskcls.label_issues SWEEP --toop 5\n"
                   "python -m maskcls.nothing\n"
                   "make tests\n"
                   "python train.py data.image_size=[96,72] 'data.fold=range(5)' -m\n"
                   "```\n")
    (tmp_path / "data.md").write_text("# Data\n")
    found = [check_command(c, monkeypatch) for _, c in commands(doc)]
    assert "did you mean data.image_size?" in found[0]
    assert "did you mean loss=focal?" in found[1]
    assert "did you mean calibrate?" in found[2]
    assert "did you mean data.image_size?" in found[3]
    assert "maskcls.label_issues refused" in found[4]
    assert found[5] == "no module maskcls.nothing"
    assert found[6] == "make has no target tests"
    assert found[7] is None
    assert sorted(broken_links(doc)) == ["page.md: data.md#nowhere: no heading #nowhere",
                                         "page.md: gone.png does not exist"]


def test_every_picture_is_made_by_docs_figures_with_its_date_and_commit():
    """No hand-copied picture: each one in README/docs sits in a block that
    ``make docs-figures`` rewrites, under a line naming its command, date and commit."""
    from benchmarks.docs_figures import BLOCK

    blocks = {}
    for md in DOCS:
        text = md.read_text()
        for m in BLOCK.finditer(text):
            blocks[m["name"]] = m["body"]
        outside = BLOCK.sub("", text)
        assert not re.findall(r"!\[[^\]]*\]\(([^)]+)\)", outside), md.name
    assert set(blocks) == {"default-run", "preview", "sweep", "label-issues"}
    for name, body in blocks.items():
        pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", body)
        assert pictures and all(p.startswith("figures/") for p in pictures), name
        assert re.search(r"Made by `python .+` on \d{4}-\d\d-\d\d at commit [0-9a-f]{7}", body), \
            name


def test_a_docs_figures_block_is_rewritten_in_place_and_a_missing_one_is_an_error():
    from benchmarks.docs_figures import replace_block

    text = ("a\n<!-- docs-figures: one -->\nold\n<!-- /docs-figures -->\nb\n"
            "<!-- docs-figures: two -->\nkeep\n<!-- /docs-figures -->\n")
    out = replace_block(text, "one", "new\n")
    assert out == text.replace("old", "new")
    with pytest.raises(KeyError, match="no <!-- docs-figures: three --> block"):
        replace_block(text, "three", "x")
