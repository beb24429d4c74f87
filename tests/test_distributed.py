"""trainer=ddp on CPU: two gloo processes, one run folder, synchronised metrics."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from lightning_fabric.utilities.distributed import DistributedSamplerWrapper
from omegaconf import OmegaConf

from maskcls.data import catalog as cat
from maskcls.data.sampling import TrainSampler
from maskcls.model.metrics import score
from maskcls.run.checkpoints import load_checkpoint
from maskcls.run.trained import load_model

ROOT = Path(__file__).parents[1]


def test_ddp_run_writes_one_folder_with_synchronised_metrics(synth_root, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "train.py", "trainer=ddp", "trainer.accelerator=cpu",
           "trainer.devices=2", f"data.root={synth_root}", "data.synthetic=null",
           "data.image_size=[32,24]", "data.batch_size=8", "trainer.max_epochs=2",
           "callbacks.progress_bar.refresh_rate=0", f"hydra.run.dir={out}",
           "data.cache=disk", f"data.cache_dir={tmp_path / 'cache'}"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    log = res.stderr + res.stdout
    assert "distributed_backend=gloo" in log
    # the shared disk cache is decoded once; the other rank reads the finished file
    assert log.count("decoding 280 of 280 images") == 1 and log.count("disk cache hit") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "run"]  # one run folder
    metrics = json.loads((out / "metrics.json").read_text())
    preds = pd.read_csv(out / "val_predictions.csv")
    assert preds["path"].is_unique and len(preds) == metrics["val_images"]

    # One process, the same checkpoint, the same validation images: the same macro-F1.
    cfg = OmegaConf.load(out / "config.yaml")
    dm = instantiate(cfg.data, _convert_="all")
    dm.setup("fit")
    model = load_model(load_checkpoint(out / "checkpoints" / "best.ckpt"), out)
    with torch.inference_mode():
        probs = torch.cat([model(dm.eval_transform(x)).softmax(1)
                           for x, _, _ in dm.val_dataloader()])
    truth = dm.val_catalog["label"].to_numpy()
    single = score(probs.argmax(1).numpy(), truth)
    assert single["f1"] == pytest.approx(metrics["val"]["f1"], abs=1e-6)
    assert single["acc"] == pytest.approx(metrics["val"]["acc"], abs=1e-6)
    assert (preds["label"].to_numpy() == truth).all()


@pytest.mark.parametrize("oversample", ["none", "weighted"])
def test_samplers_split_between_ranks_without_repeats(real_tree, oversample):
    catalog = cat.scan_train(real_tree)
    ranks = []
    for rank in (0, 1):
        inner = TrainSampler(catalog, keep_masked=1, oversample=oversample, seed=3)
        wrapped = DistributedSamplerWrapper(inner, num_replicas=2, rank=rank, shuffle=True,
                                            seed=0)
        wrapped.set_epoch(4)
        ranks.append(list(wrapped))
    reference = TrainSampler(catalog, keep_masked=1, oversample=oversample, seed=3)
    reference.set_epoch(4)  # Lightning's wrapper forwards set_epoch to the sampler it wraps
    epoch = reference.indices()
    assert len(ranks[0]) == len(ranks[1]) == len(epoch) // 2
    together = np.sort(np.concatenate(ranks))
    assert np.array_equal(together, np.sort(epoch))  # every draw once, none twice
