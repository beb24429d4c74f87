"""What a user sees and what the run folder keeps: a quiet console, an honest summary, the
run's log file, instant --help, machine-local config and tags."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from maskcls.run.results import summary_lines

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "pytorch_lightning", "timm", "torchvision", "pandas", "matplotlib")


@pytest.mark.parametrize("module", ["maskcls.export", "maskcls.report", "maskcls.faces",
                                    "maskcls.label_issues", "maskcls.preview", "maskcls.synth",
                                    "maskcls.data.catalog", "maskcls.submit"])
def test_every_commands_help_loads_no_torch(module):
    """Each command's --help is instant: torch and Lightning load when there is work."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", module, "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"python -m {module}" in done.stdout
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert imported and not [m for m in imported if m.split(".")[0] in
                             ("torch", "pytorch_lightning", "timm", "torchvision")]


@pytest.mark.parametrize("script", ["train.py", "predict.py"])
def test_help_loads_no_heavy_library(script):
    """--help composes the config only: torch, Lightning and timm are imported lazily."""
    done = subprocess.run([sys.executable, "-X", "importtime", script, "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    if script == "train.py":
        assert "== Configuration groups ==" in done.stdout
    else:  # predict.py lists its own options, not training's config groups
        assert "Options (key=value" in done.stdout and "overwrite: false" in done.stdout
        assert "Configuration groups" not in done.stdout and "loss:" not in done.stdout
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert imported, "python -X importtime printed nothing"
    assert not [m for m in imported if m.split(".")[0] in HEAVY]


@pytest.fixture(scope="module")
def fast_run(synth_root: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("console") / "run"
    done = subprocess.run(
        [sys.executable, "train.py", "debug=fast", f"data.root={synth_root}",
         "data.synthetic=null", "data.image_size=[32,24]", "data.batch_size=16",
         "trainer.accelerator=cpu", "tags=[console,check]", f"hydra.run.dir={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done, out


def test_console_is_quiet_and_the_summary_honest(fast_run):
    done, out = fast_run
    console = done.stdout + done.stderr
    for noise in ("💡", "litlogger", "Total FLOPs: 0", "best epoch None", "\r", "[A",
                  "Trainer already configured"):
        assert noise not in console, noise
    assert re.search(r"\d[\d.]* [KMG]? *Total Flops", console)  # measured, not 0
    assert re.search(r"^epoch 0/0 .* img/s ", done.stdout, re.M)  # one line, with a rate
    assert "fast_dev_run: one training and one validation batch, no checkpoint" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    scored = metrics["val"]["classes_scored"]
    assert f"over {scored} classes" in done.stdout
    absent = [k for k, v in metrics["val"]["f1_per_class"].items() if v is None]
    assert absent, "one validation batch of the tiny tree holds every class?"
    assert "not in validation (F1 n/a): " + ", ".join(absent) in done.stdout
    assert metrics["tags"] == ["console", "check"]


def test_run_folder_keeps_the_log(fast_run):
    done, out = fast_run
    log = (out / "train.log").read_text()
    assert re.search(r"\]\[maskcls\.training\.progress\]\[INFO\] - epoch 0/0 ", log)
    assert "val macro-F1" in log and "run folder:" in log  # the summary, as printed
    assert "💡" not in log
    assert "tags:\n- console\n- check" in (out / "config.yaml").read_text()


def test_summary_marks_absent_classes_na():
    f1 = {f"c{i}": 0.5 + i / 100 for i in range(18)}
    f1["c3"] = f1["c7"] = None
    metrics = {"val": {"f1": 0.61, "acc": 0.7, "f1_mask": 0.9, "f1_gender": 0.8,
                       "f1_age": 0.6, "classes_scored": 16, "f1_per_class": f1},
               "best_epoch": 4, "epochs": 6, "fit_seconds": 10, "train_images": 100,
               "val_images": 30, "val_people": 5, "tags": []}
    text = "\n".join(summary_lines(Path("run"), metrics))
    assert "best epoch 4 (of 0..5)" in text
    assert "val macro-F1 0.6100 over 16 classes" in text
    assert "weakest classes: c0 0.50, c1 0.51, c2 0.52" in text
    assert "not in validation (F1 n/a): c3, c7" in text


def test_the_next_line_asks_for_the_views_the_training_showed(tmp_path):
    """A run trained with zoom or shift is pointed at the five crop views too."""
    from maskcls.run import folder as rf
    from maskcls.run.results import predict_views

    (tmp_path / rf.BEST_CKPT).parent.mkdir(parents=True)
    (tmp_path / rf.BEST_CKPT).write_bytes(b"")
    metrics = {"val": {"f1": 0.6, "acc": 0.7, "f1_mask": 0.9, "f1_gender": 0.8, "f1_age": 0.6,
                       "classes_scored": 18, "f1_per_class": {"c0": 0.6}},
               "best_epoch": 1, "epochs": 2, "fit_seconds": 1, "train_images": 10,
               "val_images": 5, "val_people": 1, "tags": []}

    def next_line(augment):
        lines = summary_lines(tmp_path, metrics, views=predict_views(augment))
        return next(ln for ln in lines if ln.startswith("next: "))

    assert next_line({"scale": 0.15, "translate": 0.08}).endswith(" tta=true tta_crop=0.9")
    assert next_line({"scale": 0, "translate": 0.05}).endswith(" tta=true tta_crop=0.9")
    assert next_line({"scale": 0, "translate": 0}).endswith(" tta=true")
    assert next_line(None).endswith(" tta=true")


def test_local_config_overrides_and_is_git_ignored(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    (conf / "local" / "default.yaml").write_text(
        "# @package _global_\ntrainer:\n  max_epochs: 3\npaths:\n  data_dir: /mnt/faces\n")
    with initialize_config_dir(str(conf), version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=x"])
        assert cfg.trainer.max_epochs == 3 and cfg.paths.data_dir == "/mnt/faces"
        # the command line still wins
        cfg = compose("train", overrides=["paths.output_dir=x", "trainer.max_epochs=5"])
        assert cfg.trainer.max_epochs == 5
    if shutil.which("git") and (ROOT / ".git").exists():
        ignored = subprocess.run(["git", "check-ignore", "-q", "conf/local/default.yaml"],
                                 cwd=ROOT)
        assert ignored.returncode == 0, "conf/local/default.yaml is not git-ignored"


def test_the_command_index_names_every_command_of_the_package():
    """``python -m maskcls`` lists every module a user can run, and only those."""
    from maskcls.__main__ import COMMANDS

    package = ROOT / "maskcls"
    runnable = set()
    for path in package.rglob("*.py"):
        if path.name == "__main__.py" and path.parent != package:
            runnable.add(".".join(path.parent.relative_to(ROOT).parts))
        elif 'if __name__ == "__main__":' in path.read_text() and path.name != "__main__.py":
            runnable.add(".".join(path.with_suffix("").relative_to(ROOT).parts))
    listed = {m for c, _ in COMMANDS for m in re.findall(r"python -m (maskcls[\w.]*)", c)}
    assert listed == runnable
    done = subprocess.run([sys.executable, "-m", "maskcls"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and all(m in done.stdout for m in runnable)


@pytest.mark.parametrize(("command", "config"), [(["predict.py"], "predict"),
                                                 (["-m", "maskcls.export"], "export")])
def test_help_describes_every_option_with_its_default(command, config):
    """A single-file command's --help shows each key, its default and what it does."""
    from omegaconf import OmegaConf

    done = subprocess.run([sys.executable, *command, "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    options = done.stdout.split("Options (key=value on the command line):", 1)[1]
    cfg = OmegaConf.load(ROOT / "conf" / f"{config}.yaml")
    leaves = [k for k in cfg if k not in ("defaults", "hydra")]
    for key in leaves:
        node = OmegaConf.select(cfg, key, throw_on_missing=False)
        names = [f"{key}.{k}" for k in node] if OmegaConf.is_dict(node) else [key]
        for name in names:
            leaf = name.rsplit(".", 1)[-1]
            line = next((ln for ln in options.splitlines() if ln.strip().startswith(f"{leaf}:")),
                        None)
            assert line is not None, f"{name} is not in --help"
            assert "#" in line, f"{name} has no description in --help: {line!r}"


def test_every_entry_point_ends_a_user_error_through_the_one_wrapper():
    """One rule for the CLI error exit: every command's main goes through one_line_errors."""
    commands = [ROOT / "train.py", ROOT / "predict.py"] + [
        p for p in (ROOT / "maskcls").rglob("*.py")
        if 'if __name__ == "__main__":' in p.read_text() and p.name != "__main__.py"
        or p.name == "__main__.py" and p.parent.name != "maskcls"]
    assert len(commands) >= 10
    for path in commands:
        text = path.read_text()
        assert "one_line_errors(" in text, f"{path} has its own error exit"
        assert not re.search(r"except [\w, ()]*MaskclsError", text), path


def test_a_command_the_suite_runs_prints_only_its_own_errors(tmp_path):
    """``cli`` forks the test process to save torch's import: what an earlier test left for the
    garbage collector (here a DataLoader iterator whose error kept it and its worker alive)
    must not be collected, and print its workers' shutdown, inside the command's stderr."""
    import gc

    import torch
    from conftest import cli
    from torch.utils.data import DataLoader, Dataset

    class Broken(Dataset):
        def __len__(self) -> int:
            return 8

        def __getitem__(self, i: int) -> torch.Tensor:
            if i == 2:
                raise ValueError("unreadable")
            return torch.zeros(1)

    def read_all() -> None:
        for _ in DataLoader(Broken(), batch_size=1, num_workers=1):
            pass

    command = tmp_path / "command.py"  # a command that collects garbage, as training does
    command.write_text("import gc\ngc.collect()\nraise SystemExit('error: the one line')\n")
    gc.disable()  # the garbage is still there when cli forks
    try:
        with pytest.raises(ValueError, match="unreadable"):
            read_all()
        res = cli(script=str(command))
    finally:
        gc.enable()
        gc.collect()  # here, where its worker can be shut down
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == ["error: the one line"], res.stderr
