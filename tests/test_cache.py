"""Decoded-pixel caches give the same tensors as decoding every time, and notice edits."""

import time

import pytest
import torch
from PIL import Image

from maskcls.data import cache as cache_mod
from maskcls.data.datamodule import MaskDataModule


def _dm(root, cache, tmp_path=None, **kw):
    dm = MaskDataModule.from_keys(str(root), image_size=(48, 36), cache=cache,
                                  cache_dir=str(tmp_path / "cache") if tmp_path else None, **kw)
    dm.setup("fit")
    return dm


def _val_tensors(dm):
    """What the model sees in validation: loader batches after the datamodule's batch hook."""
    return torch.cat([dm.on_after_batch_transfer(b, 0)[0] for b in dm.val_dataloader()])


@pytest.mark.parametrize("cache", ["ram", "disk"])
def test_cached_and_uncached_validation_tensors_are_equal(synth_root, tmp_path, cache):
    plain = _val_tensors(_dm(synth_root, "none"))
    cached = _val_tensors(_dm(synth_root, cache, tmp_path))
    assert torch.equal(plain, cached)


def test_disk_cache_is_reused_and_notices_edits(synth_copy, tmp_path, caplog):
    caplog.set_level("INFO")
    first = _dm(synth_copy, "disk", tmp_path)
    assert "decoding 280 of 280" in caplog.text
    caplog.clear()
    _dm(synth_copy, "disk", tmp_path)
    assert "disk cache hit: 280 images" in caplog.text
    # edit one image: only its row is decoded again, and the new pixels are used
    path = first.catalog["path"].iat[5]
    time.sleep(0.01)
    Image.new("RGB", Image.open(path).size, (255, 0, 0)).save(path, quality=100)
    caplog.clear()
    third = _dm(synth_copy, "disk", tmp_path)
    assert "decoding 1 of 280" in caplog.text
    red = third._cache[5].float()
    assert red[0].mean() > 240 and red[1].mean() < 15
    assert torch.equal(third._cache[4], first._cache[4])
    assert len(list((tmp_path / "cache").glob("*/pixels-*.u8"))) == 1  # the old file is gone


def test_ram_cache_refuses_what_would_not_fit(synth_root, monkeypatch):
    monkeypatch.setattr(cache_mod, "available_memory", lambda: 10 * 2**20)
    with pytest.raises(MemoryError, match=r"data.cache=ram needs .* GiB for 280 images.*"
                                          r"data.cache=disk"):
        MaskDataModule.from_keys(str(synth_root), image_size=(512, 384), cache="ram").setup("fit")


def test_auto_workers(synth_root):
    if not torch.cuda.is_available():  # cached pixels on CPU: augment in the main process
        assert MaskDataModule.from_keys(str(synth_root), cache="ram").loading.num_workers == 0
    assert MaskDataModule.from_keys(str(synth_root), cache="none").loading.num_workers >= 1
    with pytest.raises(ValueError, match="data.num_workers must be 'auto'"):
        MaskDataModule.from_keys(str(synth_root), num_workers=-1)
    assert MaskDataModule.from_keys(str(synth_root), num_workers=3).loading.num_workers == 3


def test_dataset_normalisation_is_computed_on_training_pixels(synth_root):
    from maskcls.data.transforms import mean_std

    dm = _dm(synth_root, "ram", normalize="dataset")
    expect = mean_std(dm._cache[torch.as_tensor(dm.train_rows)])
    assert (list(dm.pipeline.mean), list(dm.pipeline.std)) == expect
    x, _, _ = dm.dataset[int(dm.train_rows[0])]
    seen = dm.eval_transform(x[None])[0]
    mean, std = torch.tensor(expect[0]).view(3, 1, 1), torch.tensor(expect[1]).view(3, 1, 1)
    assert torch.allclose(seen, (x / 255 - mean) / std, atol=1e-5)
