import numpy as np
import pytest

from maskcls.data import catalog as cat
from maskcls.data.sampling import TrainSampler


@pytest.fixture(scope="module")
def train_catalog(real_tree):
    return cat.scan_train(real_tree)


@pytest.mark.parametrize(("keep", "ratio"), [(1, (1, 1, 1)), (3, (3, 1, 1)), (5, (5, 1, 1))])
def test_undersampling_balances_mask_shots(train_catalog, keep, ratio):
    s = TrainSampler(train_catalog, keep_masked=keep, seed=0)
    idx = s.indices()
    assert len(idx) == len(s) == 2700 * (keep + 2)
    per_person = train_catalog.loc[idx].groupby("folder")["mask"].value_counts().unstack()
    assert (per_person[0] == keep).all() and (per_person[1] == 1).all()
    counts = np.bincount(train_catalog.loc[idx, "mask"])
    assert tuple(counts // 2700) == ratio


def test_kept_shots_change_per_epoch_unless_fixed(train_catalog):
    s = TrainSampler(train_catalog, keep_masked=1, seed=0)
    s.set_epoch(0)
    a = set(s.indices())
    s.set_epoch(1)
    assert set(s.indices()) != a
    s.set_epoch(0)
    assert set(s.indices()) == a  # same epoch, same draw (resume and DDP ranks agree)
    fixed = TrainSampler(train_catalog, keep_masked=1, resample_each_epoch=False, seed=0)
    fixed.set_epoch(0)
    b = set(fixed.indices())
    fixed.set_epoch(5)
    assert set(fixed.indices()) == b


def test_weighted_oversampling_balances_classes(train_catalog):
    s = TrainSampler(train_catalog, keep_masked=1, oversample="weighted", seed=0)
    labels_drawn = train_catalog.loc[s.indices(), "label"]
    counts = np.bincount(labels_drawn, minlength=18)
    assert len(labels_drawn) == len(s)
    assert counts.min() > 0.7 * counts.mean() and counts.max() < 1.3 * counts.mean()


def test_repeat_oversampling_repeats_rare_classes(train_catalog):
    base = TrainSampler(train_catalog, keep_masked=1, seed=0)
    rep = TrainSampler(train_catalog, keep_masked=1, oversample="repeat", max_repeat=8, seed=0)
    before = np.bincount(train_catalog.loc[base.indices(), "label"], minlength=18)
    after = np.bincount(train_catalog.loc[rep.indices(), "label"], minlength=18)
    assert len(rep.indices()) == len(rep)
    assert after[8] > 3 * before[8]  # incorrect/male/>=60: 83 real images
    assert after[4] == before[4]  # common classes are not repeated


def test_bad_sampler_settings(train_catalog):
    with pytest.raises(ValueError, match="keep_masked must be in 1..5"):
        TrainSampler(train_catalog, keep_masked=0)
    with pytest.raises(ValueError, match="data.oversample must be one of"):
        TrainSampler(train_catalog, oversample="bogus")


@pytest.mark.parametrize(("keep", "oversample"), [(1, "none"), (3, "none"), (5, "none"),
                                                  (1, "repeat"), (3, "weighted")])
def test_class_counts_are_those_of_the_epoch_the_loss_sees(train_catalog, keep, oversample):
    """A class-weighted or logit-adjusted loss balances the classes it is trained on: after
    undersampling (keep_masked=1: masks 1:1:1, not the tree's 5:1:1) and oversampling."""
    s = TrainSampler(train_catalog, keep_masked=keep, oversample=oversample, seed=0)
    counts = s.class_counts()
    for epoch in (0, 3):
        s.set_epoch(epoch)
        drawn = np.bincount(train_catalog.loc[s.indices(), "label"], minlength=18)
        if oversample == "weighted":  # random draws: the expected counts, within the spread
            assert np.abs(drawn - counts).max() < 5 * np.sqrt(counts.max())
        else:
            assert drawn.tolist() == counts.tolist()
    assert counts.sum() == pytest.approx(len(s))
