import pytest

from maskcls.data import catalog as cat
from maskcls.data.splits import holdout_split, kfold_split, people_table


@pytest.fixture(scope="module")
def real_catalog(real_tree):
    return cat.scan_train(real_tree)


def test_holdout_is_by_person_with_exact_ratio(real_catalog):
    train, val = holdout_split(real_catalog, 0.2, seed=7)
    assert not train & val
    n_people = real_catalog["person_id"].nunique()
    assert len(val) == round(0.2 * n_people)
    assert train | val == set(real_catalog["person_id"])
    # both folders of id 003397 land on the same side
    assert ("003397" in train) != ("003397" in val)


def test_holdout_is_stratified_and_seeded(real_catalog):
    people = people_table(real_catalog).set_index("person_id")
    train, val = holdout_split(real_catalog, 0.2, seed=7)
    share_all = people["stratum"].value_counts(normalize=True).sort_index()
    share_val = people.loc[sorted(val), "stratum"].value_counts(normalize=True).sort_index()
    assert (share_all - share_val).abs().max() < 0.01
    assert holdout_split(real_catalog, 0.2, seed=7) == (train, val)
    assert holdout_split(real_catalog, 0.2, seed=8)[1] != val


@pytest.mark.parametrize("n_folds", [3, 5])
def test_folds_partition_people(real_catalog, n_folds):
    all_people = set(real_catalog["person_id"])
    vals = []
    for fold in range(n_folds):
        train, val = kfold_split(real_catalog, n_folds, fold, seed=42)
        assert not train & val, f"fold {fold} has a person in train and val"
        assert train | val == all_people
        vals.append(val)
    assert set().union(*vals) == all_people
    assert sum(len(v) for v in vals) == len(all_people)
    sizes = [len(v) for v in vals]
    assert max(sizes) - min(sizes) <= 6  # stratified, near-equal folds


def test_split_errors(real_catalog):
    with pytest.raises(ValueError, match="data.fold must be in 0..4"):
        kfold_split(real_catalog, 5, 5, seed=0)
    with pytest.raises(ValueError, match="data.n_folds must be at least 2"):
        kfold_split(real_catalog, 1, 0, seed=0)
    with pytest.raises(ValueError, match="data.val_ratio"):
        holdout_split(real_catalog, 1.5, seed=0)


@pytest.mark.parametrize("n_people", [12, 16, 31])
def test_a_small_tree_with_every_stratum_splits_by_person(real_catalog, n_people):
    """Fewer validation people than gender x age strata (16 people at 0.2: 3 for 6 strata):
    a plain seeded shuffle of people, never sklearn's stratification error."""
    people = people_table(real_catalog)
    # two people of each of the six strata, then more of the first ones
    ids = people.groupby("stratum").head(max(2, n_people // 6))["person_id"].head(n_people)
    small = real_catalog[real_catalog["person_id"].isin(set(ids))]
    assert people_table(small)["stratum"].nunique() == 6
    train, val = holdout_split(small, 0.2, seed=1)
    assert len(val) == round(0.2 * len(ids)) and not train & val
    assert train | val == set(ids)
    assert holdout_split(small, 0.2, seed=1) == (train, val)
