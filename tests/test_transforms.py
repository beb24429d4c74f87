import numpy as np
import pytest
import torch
from PIL import Image

from maskcls.data.dataset import ImageReadError, read_rgb
from maskcls.data.pipeline import Pipeline, check_image_size
from maskcls.data.transforms import AugmentConfig, mean_std


def test_mean_std_pools_pixels_not_per_image_stds():
    a = torch.zeros(3, 2, 2, dtype=torch.uint8)
    b = torch.full((3, 2, 2), 255, dtype=torch.uint8)
    mean, std = mean_std([a, b])
    assert mean == pytest.approx([0.5] * 3)
    assert std == pytest.approx([0.5] * 3)  # per-image stds are 0; the pooled std is 0.5
    x = torch.randint(0, 256, (5, 3, 7, 9), dtype=torch.uint8)
    ref = x.double().div(255).permute(1, 0, 2, 3).reshape(3, -1)
    m, s = mean_std(x)
    assert m == pytest.approx(ref.mean(1).tolist())
    assert s == pytest.approx(ref.std(1, unbiased=False).tolist())


@pytest.mark.parametrize("bad", [[128], [128, 0], [128.0, 96], "128x96", [128, 96, 3], [-1, 5]])
def test_image_size_must_be_two_positive_ints(bad):
    with pytest.raises(ValueError, match="data.image_size must be two positive integers"):
        check_image_size(bad)


def test_base_gives_the_configured_size_in_uint8():
    img = torch.randint(0, 256, (3, 512, 384), dtype=torch.uint8)
    pipeline = Pipeline([96, 72], center_crop=[0.8, 0.8])
    small = pipeline.resize(img)
    assert small.shape == (3, 96, 72) and small.dtype == torch.uint8
    assert torch.equal(small, pipeline.resize(img))
    assert pipeline.decode_size == (120, 90)  # the crop still resizes down
    assert Pipeline.from_state(pipeline.to_state()) == pipeline


@pytest.mark.parametrize(("key", "value"), [("hflip", 1.5), ("rotation", -5), ("hue", 0.7),
                                            ("erasing", "often"), ("brightness", -0.1)])
def test_bad_augment_values_name_the_key(key, value):
    with pytest.raises(ValueError, match=f"augment.{key} must be a number"):
        AugmentConfig(**{key: value})


@pytest.mark.parametrize("mode", ["RGBA", "L", "CMYK", "P"])
def test_odd_colour_modes_decode_to_rgb(tmp_path, mode):
    path = tmp_path / f"x.{'jpg' if mode in ('L', 'CMYK') else 'png'}"
    Image.fromarray(np.full((20, 10, 3), 120, np.uint8)).convert(mode).save(path)
    x = read_rgb(str(path))
    assert x.shape == (3, 20, 10) and x.dtype == torch.uint8


@pytest.mark.parametrize("content", [b"", b"\xff\xd8\xff\xe0 truncated"])
def test_unreadable_image_names_the_file(tmp_path, content):
    path = tmp_path / "mask1.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=r"mask1\.jpg: cannot decode image"):
        read_rgb(str(path))
