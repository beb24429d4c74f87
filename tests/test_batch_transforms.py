"""The batched augmentation does per image what torchvision's per-image transforms do."""

import math

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from maskcls.data.batch_transforms import (
    BatchTransform,
    affine_resample,
    colour_matrix,
    sharpen,
)
from maskcls.data.transforms import AugmentConfig

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
OFF = {"rotation": 0, "hflip": 0}


def _pixels(n=6, h=40, w=30, low=0, high=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, (n, 3, h, w), dtype=torch.uint8, generator=g)


def _reference_normalise(x):
    return TF.normalize(x.float() / 255, list(MEAN), list(STD))


def test_eval_transform_is_torchvision_normalisation():
    x = _pixels()
    got = BatchTransform(None, MEAN, STD)(x)
    assert got.dtype == torch.float32 and got.shape == x.shape
    assert torch.allclose(got, _reference_normalise(x), atol=1e-5)


@pytest.mark.parametrize("angle", [7.0, -12.0])
def test_rotation_matches_torchvision_rotate_on_a_non_square_image(angle):
    x = _pixels().float()
    got = affine_resample(x, torch.full((6,), angle), torch.zeros(6, dtype=torch.bool))
    ref = torch.stack([TF.rotate(img, angle, interpolation=TF.InterpolationMode.BILINEAR)
                       for img in x])
    # the interior (edge pixels differ only in how the zero fill is blended)
    assert torch.allclose(got[..., 3:-3, 3:-3], ref[..., 3:-3, 3:-3], atol=1e-2)
    assert not torch.allclose(got, x, atol=1)


def test_flip_mirrors_and_no_op_is_identity():
    x = _pixels().float()
    none = torch.zeros(6, dtype=torch.bool)
    assert torch.allclose(affine_resample(x, torch.zeros(6), ~none), x.flip(-1), atol=1e-3)
    assert torch.allclose(affine_resample(x, torch.zeros(6), none), x, atol=1e-3)


def test_colour_matrix_matches_torchvision_brightness_contrast_saturation():
    x = _pixels(n=3, low=60, high=190)  # mid-range: no op clips, so clamping order is moot
    b, c, s = (torch.tensor(v) for v in ([0.9, 1.1, 1.0], [1.1, 0.85, 1.0], [0.8, 1.2, 1.0]))
    matrix, offset = colour_matrix(x.double().mean((2, 3)) / 255, b, c, s, torch.zeros(3),
                                   torch.tensor(MEAN), torch.tensor(STD))
    got = (torch.bmm(matrix, x.float().view(3, 3, -1)) + offset.view(3, 3, 1)).view(x.shape)
    ref = []
    for i, img in enumerate(x.float() / 255):
        img = TF.adjust_brightness(img, b[i].item())
        img = TF.adjust_contrast(img, c[i].item())
        img = TF.adjust_saturation(img, s[i].item())
        ref.append(TF.normalize(img, list(MEAN), list(STD)))
    assert torch.allclose(got, torch.stack(ref), atol=1e-4)


def test_hue_turns_colours_and_keeps_greys():
    one = torch.ones(2, dtype=torch.float64)
    matrix, offset = colour_matrix(torch.full((2, 3), 0.5), one, one, one,
                                   torch.tensor([0.0, 0.25]), torch.zeros(3), torch.ones(3))
    grey = torch.tensor([100.0, 100.0, 100.0])
    red = torch.tensor([200.0, 30.0, 30.0])
    assert torch.allclose(matrix[0] @ red, red / 255, atol=1e-6)  # hue 0: unchanged
    assert torch.allclose(matrix[1] @ grey, grey / 255, atol=1e-4)  # greys stay grey
    turned = matrix[1] @ red
    assert turned.argmax() != 0  # a quarter turn moves red off red


def test_sharpen_matches_torchvision_adjust_sharpness():
    x = _pixels(n=2)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    low, high = -mean / std, (1 - mean) / std  # pixel values 0 and 255
    got = sharpen(_reference_normalise(x), low, high)
    ref = _reference_normalise(torch.stack([TF.adjust_sharpness(img, 2.0) for img in x]))
    # torchvision rounds the smoothed uint8 image; one grey level is 0.02 after normalising
    assert (got - ref).abs().max() < 0.05


def test_each_image_draws_its_own_brightness():
    x = torch.full((64, 3, 8, 8), 128, dtype=torch.uint8)
    tf = BatchTransform(AugmentConfig(**OFF, brightness=0.3), (0, 0, 0), (1, 1, 1))
    out = tf(x)
    factors = out.mean((1, 2, 3)) / (128 / 255)
    assert torch.allclose(out, out.mean((1, 2, 3), keepdim=True).expand_as(out))  # per image
    assert factors.min() >= 0.7 - 1e-5 and factors.max() <= 1.3 + 1e-5
    assert len(factors.unique()) == 64


def test_colour_jitter_keeps_pixels_in_range():
    tf = BatchTransform(AugmentConfig(**OFF, brightness=0.9, contrast=0.9, saturation=0.9,
                                      hue=0.5), MEAN, STD)
    out = tf(_pixels(n=32))
    low = (-torch.tensor(MEAN) / torch.tensor(STD)).view(1, 3, 1, 1)
    high = ((1 - torch.tensor(MEAN)) / torch.tensor(STD)).view(1, 3, 1, 1)
    assert bool((out >= low - 1e-5).all() and (out <= high + 1e-5).all())


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_erasing_blanks_one_rectangle_of_the_chosen_images(p):
    x = _pixels(n=32, h=48, w=40, low=1)  # with mean 0, std 1: zero only where erased
    out = BatchTransform(AugmentConfig(**OFF, erasing=p), (0, 0, 0), (1, 1, 1))(x)
    for img in out:
        zero = (img == 0).all(0)
        if p == 0:
            assert not zero.any()
            continue
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        box = zero[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert box.all()  # one filled rectangle
        assert 0.02 * 48 * 40 * 0.7 <= zero.sum() <= 0.33 * 48 * 40 * 1.3


def test_same_seed_same_batch_on_any_slicing(monkeypatch):
    from maskcls.data import batch_transforms as bt

    cfg = AugmentConfig(rotation=15, brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05,
                        sharpness=0.5, hflip=0.5, erasing=0.5)
    x = _pixels(n=16)
    torch.manual_seed(3)
    whole = BatchTransform(cfg, MEAN, STD)(x)
    monkeypatch.setattr(bt, "_CPU_SLICE_BYTES", 12 * 40 * 30 * 3)  # slices of 3 images
    torch.manual_seed(3)
    sliced = BatchTransform(cfg, MEAN, STD)(x)
    assert torch.allclose(whole, sliced, atol=1e-5)
    assert not torch.allclose(whole, BatchTransform(cfg, MEAN, STD)(x))


def test_bad_input_is_refused_with_its_dtype_and_shape():
    with pytest.raises(ValueError, match=r"expects uint8 \(B, 3, H, W\) pixels, got "
                                         r"torch.float32 \(2, 3, 4, 4\)"):
        BatchTransform(None, MEAN, STD)(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="three positive stds"):
        BatchTransform(None, MEAN, (0.2, 0.0, 0.2))


def test_rotation_angle_range():
    # a one-pixel dot off-centre lands on the circle of its radius, within +-rotation degrees
    x = torch.zeros(64, 3, 41, 41, dtype=torch.uint8)
    x[:, :, 20, 35] = 255
    out = BatchTransform(AugmentConfig(rotation=30, hflip=0), (0, 0, 0), (1, 1, 1))(x)
    angles = []
    for img in out[:, 0]:
        r, c = divmod(int(img.argmax()), 41)
        angles.append(math.degrees(math.atan2(20 - r, c - 20)))
    assert max(abs(a) for a in angles) <= 30 + 5
    assert max(angles) > 10 and min(angles) < -10
