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
