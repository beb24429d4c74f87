"""Several processes meeting at first-use data and at a shared disk cache.

Each race test starts real processes at once and injects a delay inside the critical
section, so that without the lock they would overlap every time, not by bad luck.
"""

import hashlib
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from maskcls.data import catalog as cat
from maskcls.data.cache import disk_cache
from maskcls.data.datamodule import MaskDataModule
from maskcls.data.dataset import decode_all
from maskcls.data.pipeline import Pipeline
from maskcls.synth import SynthConfig, generate

ROOT = Path(__file__).parents[1]
SMALL = dict(persons=6, eval_persons=1, width=24, height=32, seed=4)

GENERATE = textwrap.dedent("""
    import sys, time
    import maskcls.synth as synth
    real = synth._generate_into
    def slow(*args, **kwargs):
        time.sleep(float(sys.argv[2]))  # inside the critical section
        return real(*args, **kwargs)
    synth._generate_into = slow
    cfg = synth.SynthConfig(**{SMALL})
    print("GENERATED" if synth.ensure_synthetic(sys.argv[1], cfg) else "USED", flush=True)
""").replace("{SMALL}", repr(SMALL))

BUILD_CACHE = textwrap.dedent("""
    import hashlib, sys, time
    import maskcls.data.cache as cache
    from maskcls.data import catalog
    from maskcls.data.pipeline import Pipeline
    real = cache.decode_all
    def slow(*args, **kwargs):
        print("DECODING", flush=True)
        time.sleep(float(sys.argv[3]))  # inside the critical section, pixel file created
        return real(*args, **kwargs)
    cache.decode_all = slow
    paths = catalog.scan_train(sys.argv[1])["path"].tolist()
    pixels = cache.disk_cache(paths, Pipeline((32, 24)), 0, sys.argv[2])
    print("PIXELS", hashlib.sha1(pixels.numpy().tobytes()).hexdigest(), flush=True)
""")


def start(script: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(procs: list[subprocess.Popen]) -> list[str]:
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        outs.append(out)
    return outs


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def reference_pixels(root: Path) -> str:
    paths = cat.scan_train(root)["path"].tolist()
    return hashlib.sha1(decode_all(paths, Pipeline((32, 24))).numpy().tobytes()).hexdigest()


# One attempt in the default suite (the injected delay makes a race certain, not lucky);
# more under `make test-all`.
@pytest.mark.parametrize("attempt", [0, *(pytest.param(i, marks=pytest.mark.slow)
                                          for i in (1, 2))])
def test_processes_generating_one_synthetic_tree_at_once(tmp_path, attempt):
    root = tmp_path / "data" / "synthetic"
    outs = finish([start(GENERATE, root, 1.0) for _ in range(4)])
    assert sorted(o.strip() for o in outs) == ["GENERATED", "USED", "USED", "USED"]
    reference = generate(tmp_path / "reference", SynthConfig(**SMALL), workers=1)
    assert tree_digest(root) == tree_digest(reference)
    assert sorted(p.name for p in root.parent.iterdir()) == [".synthetic.lock", "synthetic"]


def test_a_killed_generator_leaves_nothing_taken_for_a_tree(tmp_path):
    root = tmp_path / "data" / "synthetic"
    victim = start(GENERATE, root, 60)
    deadline = time.monotonic() + 60
    while not list(root.parent.glob(".synthetic.*/")) and time.monotonic() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert not root.exists() and list(root.parent.glob(".synthetic.*/"))  # its half-built tree
    assert [o.strip() for o in finish([start(GENERATE, root, 0)])] == ["GENERATED"]
    assert sorted(p.name for p in root.parent.iterdir()) == [".synthetic.lock", "synthetic"]
    reference = generate(tmp_path / "reference", SynthConfig(**SMALL), workers=1)
    assert tree_digest(root) == tree_digest(reference)


# One attempt in the default suite (the injected delay makes a race certain, not lucky);
# more under `make test-all`.
@pytest.mark.parametrize("attempt", [0, *(pytest.param(i, marks=pytest.mark.slow)
                                          for i in (1, 2))])
def test_processes_building_one_disk_cache_at_once(synth_root, tmp_path, attempt):
    cache_dir = tmp_path / "cache"
    outs = finish([start(BUILD_CACHE, synth_root, cache_dir, 1.0) for _ in range(4)])
    assert sum(o.count("DECODING") for o in outs) == 1  # one built, three waited and read it
    digests = {line.split()[1] for o in outs for line in o.splitlines()
               if line.startswith("PIXELS")}
    assert digests == {reference_pixels(synth_root)}
    (folder,) = cache_dir.iterdir()
    names = sorted(p.name for p in folder.iterdir())
    assert names[:2] == [".lock", "index.csv"] and len(names) == 3  # one pixel file


def test_a_killed_cache_builder_is_rebuilt_by_the_next_run(synth_root, tmp_path):
    cache_dir = tmp_path / "cache"
    victim = start(BUILD_CACHE, synth_root, cache_dir, 60)
    assert victim.stdout.readline().strip() == "DECODING"  # holds the lock, pixel file open
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    (folder,) = cache_dir.iterdir()
    assert [p.name for p in folder.glob("pixels-*.u8")] and not (folder / "index.csv").exists()
    (out,) = finish([start(BUILD_CACHE, synth_root, cache_dir, 0)])  # no stale lock: no wait
    assert "DECODING" in out and out.split()[-1] == reference_pixels(synth_root)
    assert len(list(folder.glob("pixels-*.u8"))) == 1  # the killed builder's file is gone


def test_the_ram_cache_touches_no_shared_files(synth_root, tmp_path):
    dm = MaskDataModule.from_keys(str(synth_root), image_size=(32, 24), cache="ram",
                                  cache_dir=str(tmp_path / "cache"))
    dm.setup("fit")
    assert not (tmp_path / "cache").exists()
    assert not (synth_root / ".maskcls_cache").exists()
    assert dm._cache is not None and not isinstance(dm._cache.untyped_storage().filename, str)


def test_disk_caches_of_different_data_roots_do_not_share_a_folder(synth_root, tmp_path):
    paths = cat.scan_train(synth_root)["path"].tolist()[:20]
    a = disk_cache(paths, Pipeline((32, 24)), 0, tmp_path, variant=str(synth_root))
    b = disk_cache(paths, Pipeline((32, 24)), 0, tmp_path, variant="/elsewhere")
    assert torch.equal(a, b) and len(list(tmp_path.iterdir())) == 2


def test_a_parallel_sweep_on_a_fresh_data_folder(tmp_path):
    """The natural first parallel sweep: two jobs generate the synthetic tree on first use and
    build one disk cache at the same time."""
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "train.py", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
           "seed=1,2", f"paths.data_dir={tmp_path / 'data'}", "data.synthetic.persons=20",
           "data.synthetic.eval_persons=2", "data.synthetic.width=48",
           "data.synthetic.height=64", "data.image_size=[32,24]", "data.batch_size=16",
           "data.cache=disk", f"data.cache_dir={tmp_path / 'cache'}", "trainer.max_epochs=1",
           "trainer.accelerator=cpu", "callbacks.progress_bar.refresh_rate=0",
           f"hydra.sweep.dir={sweep}"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    table = pd.read_csv(sweep / "summary.csv")
    assert sorted(table["status"]) == ["done", "done"]
    assert (tmp_path / "data" / "synthetic" / "train" / "images").is_dir()
    assert len(list((tmp_path / "cache").glob("*/pixels-*.u8"))) == 1
