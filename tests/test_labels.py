import numpy as np
import pytest
import torch

from maskcls import labels


def test_encode_decode_round_trip_all_classes():
    ids = np.arange(labels.NUM_CLASSES)
    m, g, a = labels.decode(ids)
    assert np.array_equal(labels.encode(m, g, a), ids)
    assert set(m) == {0, 1, 2} and set(g) == {0, 1} and set(a) == {0, 1, 2}


def test_encoding_matches_the_competition_formula():
    assert labels.encode(0, 0, 0) == 0
    assert labels.encode(2, 1, 2) == 17
    assert labels.encode(1, 1, 0) == 9  # incorrect, female, <30
    assert labels.class_name(9) == "incorrect/female/<30"
    assert labels.decode(torch.tensor([13]))[0].item() == 2


@pytest.mark.parametrize(("age", "group"), [(18, 0), (29, 0), (30, 1), (59, 1), (60, 2), (75, 2)])
def test_age_boundaries(age, group):
    assert labels.age_group(age) == group
    assert labels.age_group(np.array([age]))[0] == group
    assert labels.age_group(torch.tensor([age]))[0].item() == group


def test_age_bounds_are_configurable_and_checked():
    assert labels.age_group(58, (30, 58)) == 2
    with pytest.raises(ValueError, match="age_bounds"):
        labels.age_group(40, (60, 30))


def test_mask_stems_and_genders():
    assert [labels.MASK_BY_STEM[s] for s in ("mask1", "mask5", "incorrect_mask", "normal")] == [
        0, 0, 1, 2]
    assert labels.gender_code("Female") == 1
    assert list(labels.gender_code(["male", "female"])) == [0, 1]
    with pytest.raises(ValueError, match="unknown gender"):
        labels.gender_code("other")


def test_soft_age_targets_spread_an_age_near_a_bound_over_both_groups():
    wear_female = [labels.encode(0, 1, a) for a in range(3)]
    y = torch.tensor([wear_female[1]] * 4 + [labels.encode(2, 0, 2), labels.encode(1, 0, 0)])
    age = torch.tensor([59.0, 58.0, 45.0, 30.0, 60.0, float("nan")])
    rows = labels.soft_age_targets(y, age, (30, 60), 2.0)
    assert torch.allclose(rows.sum(1), torch.ones(6))
    mask, gender, group = labels.task_marginals(rows)  # mask and gender as given
    m, g, _ = labels.decode(y)
    assert torch.equal(mask.argmax(1), m) and torch.equal(gender.argmax(1), g)
    assert torch.allclose(mask.max(1).values, torch.ones(6))
    assert torch.allclose(gender.max(1).values, torch.ones(6))
    # a normal of 2 years around the middle of the year: 59 -> 60+ with P(z > 0.25)
    assert group[0, 2].item() == pytest.approx(0.401, abs=1e-3)
    assert group[1, 2].item() == pytest.approx(0.227, abs=1e-3)  # 58: P(z > 0.75)
    assert group[2, 1].item() == pytest.approx(1.0, abs=1e-6)   # 45: far from both bounds
    assert group[3, 0].item() == pytest.approx(0.401, abs=1e-3)  # 30: toward <30 as well
    # the 60+ stay 60+ (their recorded 60 is a floor), an image with no age stays as labelled
    assert torch.equal(rows[4:], torch.nn.functional.one_hot(y[4:], 18).float())


@pytest.mark.parametrize("sigma", [0.5, 2.0, 10.0])
def test_soft_age_targets_keep_every_given_class_the_most_likely(sigma):
    ages = torch.arange(18.0, 61.0)
    y = torch.from_numpy(labels.encode(1, 0, labels.age_group(ages.numpy())))
    assert torch.equal(labels.soft_age_targets(y, ages, (30, 60), sigma).argmax(1), y)
