from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from maskcls.model.losses import (
    CrossEntropy,
    FocalLoss,
    SoftF1Loss,
    inverse_frequency_weights,
)

COUNTS = [100] * 17 + [10]


def test_focal_with_gamma_zero_is_cross_entropy():
    logits, y = torch.randn(32, 18), torch.randint(0, 18, (32,))
    ce = torch.nn.functional.cross_entropy(logits, y)
    assert FocalLoss(gamma=0.0)(logits, y) == pytest.approx(ce.item(), rel=1e-5)
    assert FocalLoss(gamma=2.0)(logits, y) < ce


def test_focal_down_weights_easy_examples():
    y = torch.tensor([0])
    easy, hard = torch.tensor([[8.0] + [0.0] * 17]), torch.tensor([[0.0] * 18])
    ratio_focal = FocalLoss(2.0)(easy, y) / FocalLoss(2.0)(hard, y)
    ratio_ce = CrossEntropy()(easy, y) / CrossEntropy()(hard, y)
    assert ratio_focal < ratio_ce


def test_class_weights_favour_rare_classes():
    w = inverse_frequency_weights(COUNTS)
    assert w[17] == pytest.approx(10 * w[0])
    assert inverse_frequency_weights([5, 0])[1] == 0
    # the common-class sample is predicted well, the rare one not at all: weighting by
    # inverse frequency makes the rare miss dominate
    logits = torch.zeros(2, 18)
    logits[1, 0] = 5.0
    target = torch.tensor([17, 0])
    weighted = CrossEntropy(weighted=True, class_counts=COUNTS)(logits, target)
    assert weighted > CrossEntropy()(logits, target)
    late = CrossEntropy(weighted=True)  # as train.py builds it: counts once the data is set up
    with pytest.raises(ValueError, match="class counts"):
        late(logits, target)
    late.set_class_counts(COUNTS)
    assert late(logits, target) == weighted


def test_soft_f1_is_zero_for_perfect_and_high_for_wrong():
    y = torch.arange(18)
    perfect = torch.eye(18) * 50
    assert SoftF1Loss()(perfect, y) < 1e-3
    assert SoftF1Loss()(perfect.roll(1, dims=1), y) > 0.99


def test_focal_with_gamma_zero_and_smoothing_is_smoothed_cross_entropy():
    logits, y = torch.randn(16, 18), torch.randint(0, 18, (16,))
    ref = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.1)
    assert FocalLoss(gamma=0.0, label_smoothing=0.1)(logits, y) == pytest.approx(ref.item(),
                                                                                 rel=1e-5)


def test_label_smoothing_uses_torch():
    logits, y = torch.randn(8, 18), torch.randint(0, 18, (8,))
    ref = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.1)
    assert CrossEntropy(label_smoothing=0.1)(logits, y) == pytest.approx(ref.item())


def test_weighted_sum_from_config():
    cfg = OmegaConf.load(Path(__file__).parents[1] / "conf" / "loss" / "ce_f1.yaml")
    loss = instantiate(cfg, class_counts=COUNTS)
    logits, y = torch.randn(8, 18), torch.randint(0, 18, (8,))
    expect = CrossEntropy()(logits, y) + SoftF1Loss()(logits, y)
    assert loss(logits, y) == pytest.approx(expect.item(), rel=1e-5)


def _fitted_prior(loss: torch.nn.Module, target: torch.Tensor) -> torch.Tensor:
    """The class probabilities a constant predictor (one free logit per class) learns."""
    bias = torch.zeros(1, 3, requires_grad=True)
    opt = torch.optim.SGD([bias], lr=1.0)
    for _ in range(500):
        opt.zero_grad()
        loss(bias.expand(len(target), 3), target).backward()
        opt.step()
    return bias.detach().softmax(1)[0]


def test_logit_adjustment_learns_the_balanced_decision():
    """Targets 80/15/5: plain cross-entropy learns the prior, so the rare class is never
    predicted; with logit_adjust=1 the learnt logits are balanced (every class equally
    likely), which is what lets a rare class win its images."""
    counts = [80, 15, 5]
    target = torch.tensor([0] * 80 + [1] * 15 + [2] * 5)
    plain = _fitted_prior(CrossEntropy(), target)
    assert plain.tolist() == pytest.approx([0.80, 0.15, 0.05], abs=0.01)
    adjusted = _fitted_prior(CrossEntropy(logit_adjust=1.0, class_counts=counts), target)
    assert adjusted.tolist() == pytest.approx([1 / 3] * 3, abs=0.01)
    late = CrossEntropy(logit_adjust=1.0)  # counts arrive once the data is set up
    with pytest.raises(ValueError, match="class counts"):
        late(torch.zeros(2, 3), target[:2])
    with pytest.raises(ValueError, match="loss.logit_adjust must be >= 0"):
        CrossEntropy(logit_adjust=-1.0)
