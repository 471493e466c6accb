"""Label budgets: deterministic labelled subsets; validation images never train."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from engine.data import load_index, parse_labeled, split_label_budget
from engine.data.budget import validation_ids


@pytest.fixture
def index(write_dataset):
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[:, 4:] = 1
    masks = {f"m{i:02d}": mask for i in range(40)} | {f"u{i:02d}": None for i in range(5)}
    return load_index(write_dataset(masks, image_size=(8, 8)))


@pytest.mark.parametrize("value, expected", [
    ("1/8", Fraction(1, 8)), (0.25, Fraction(1, 4)), ("0.5", Fraction(1, 2)), ("all", Fraction(1)),
    ("16", 16), (16, 16), (" 1/16 ", Fraction(1, 16)),
])
def test_parse_labeled(value, expected):
    assert parse_labeled(value) == expected


@pytest.mark.parametrize("value", ["0", "2/1", "-1", "half", 0, True, 1.5, "1/0"])
def test_parse_labeled_refuses(value):
    with pytest.raises(ValueError):
        parse_labeled(value)


def test_fraction_of_masked_training_images(index):
    budget = split_label_budget(index, "1/4", seed=0)
    assert len(budget.val_ids) == 8  # 20% of 40 masked images
    assert len(budget.labeled_ids) == 8  # a quarter of the 32 left
    assert sorted(budget.unlabeled_ids) == sorted(set(index.by_id) - set(budget.labeled_ids) - set(budget.val_ids))
    assert sorted(budget.hidden_ids) == sorted(i for i in budget.unlabeled_ids if i.startswith("m"))
    assert {i for i in budget.unlabeled_ids if i.startswith("u")} == {f"u{i:02d}" for i in range(5)}


def test_count(index):
    assert len(split_label_budget(index, 5, seed=0).labeled_ids) == 5


def test_deterministic_for_a_seed_and_different_across_seeds(index):
    first, again = split_label_budget(index, "1/4", seed=3), split_label_budget(index, "1/4", seed=3)
    assert first == again
    assert split_label_budget(index, "1/4", seed=4).labeled_ids != first.labeled_ids


@pytest.mark.parametrize("labeled", ["1/16", "1/8", "1/2", "all", 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_validation_images_never_train(index, labeled, seed):
    budget = split_label_budget(index, labeled, seed)
    val = set(budget.val_ids)
    assert val and not val & set(budget.labeled_ids) and not val & set(budget.unlabeled_ids)
    assert budget.val_ids == validation_ids(index)  # the same validation images for every seed and budget


def test_split_files_decide(write_dataset):
    mask = np.ones((8, 8), dtype=np.uint8)
    masks = {f"m{i}": mask for i in range(6)} | {"u0": None}
    index = load_index(write_dataset(masks, image_size=(8, 8),
                                     splits={"train": ["m0", "m1", "m2", "m3"], "val": ["m5"]}))
    budget = split_label_budget(index, "all", seed=0)
    assert budget.val_ids == ["m5"]
    assert budget.labeled_ids == ["m0", "m1", "m2", "m3"]  # m4 is in neither split: never trained on
    assert budget.unlabeled_ids == ["u0"]


def test_masked_images_outside_train_txt_validate(write_dataset):
    mask = np.ones((8, 8), dtype=np.uint8)
    index = load_index(write_dataset({f"m{i}": mask for i in range(4)}, splits={"train": ["m0", "m1"]}))
    assert split_label_budget(index, "all", seed=0).val_ids == ["m2", "m3"]


def test_budget_larger_than_the_training_split(index):
    with pytest.raises(ValueError, match="asks for 33 labelled images but the training split has only 32"):
        split_label_budget(index, 33, seed=0)


@pytest.mark.parametrize("value", ["1", 1, " 1 "])
def test_a_bare_1_is_refused_with_the_way_to_say_all(value):
    with pytest.raises(ValueError, match=r"single labelled image; write all \(or 1/1\)"):
        parse_labeled(value)


@pytest.mark.parametrize("value", ["all", "ALL", "1/1", 1.0, "1.0"])
def test_all_and_1_over_1_mean_every_masked_image(value):
    assert parse_labeled(value) == Fraction(1)


@pytest.mark.parametrize("value", [10**30, "9" * 5000, "1/" + "3" * 5000, float("inf"), float("nan"), "1e999", 100_001])
def test_budgets_beyond_any_dataset_are_refused_in_plain_words(value):
    with pytest.raises(ValueError) as caught:
        parse_labeled(value)
    assert "labelled images" in str(caught.value) or "expected a fraction" in str(caught.value)
    assert len(str(caught.value)) < 200


def test_the_offered_budgets_come_from_the_engine_and_parse():
    from engine.data.budget import STANDARD_BUDGETS

    assert STANDARD_BUDGETS[-1] == "all" and "1" not in STANDARD_BUDGETS
    assert [parse_labeled(b) for b in STANDARD_BUDGETS] == sorted(parse_labeled(b) for b in STANDARD_BUDGETS)


def test_the_validation_count_is_the_share_at_least_one_and_never_every_masked_image():
    from engine.data.budget import validation_count

    assert [validation_count(n) for n in (0, 1, 2, 4, 24, 100)] == [0, 0, 1, 1, 5, 20]
    assert validation_count(10, 0.9) == 9 and validation_count(10, 0.0) == 1
