"""Label budgets: which masked training images a run may use as labelled.

The unlabelled pool is the dataset's unlabelled images plus the masked training images
the budget leaves out; their masks stay hidden from training and serve only to measure
pseudo-label accuracy. The validation split is never used for training.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction

from engine.data.index import DatasetIndex

DEFAULT_VAL_FRACTION = 0.2


@dataclass(frozen=True)
class LabelBudget:
    labeled_ids: list[str]
    unlabeled_ids: list[str]  # includes masked training images left out (hidden masks)
    val_ids: list[str]


def parse_labeled(value: str | int | float) -> Fraction | int:
    """`"1/8"`, `0.125` -> a fraction of the masked training images; `"16"`, `16` -> a count; `"all"` -> 1."""
    if isinstance(value, bool):
        raise ValueError(f"expected a fraction like 1/8 or a count like 16, got {value!r}")
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "all":
            return Fraction(1)
        if "/" in text or "." in text:
            try:
                fraction = Fraction(text)
            except (ValueError, ZeroDivisionError):
                raise ValueError(f"expected a fraction like 1/8 or a count like 16, got {value!r}") from None
        else:
            try:
                return parse_labeled(int(text))
            except ValueError:
                raise ValueError(f"expected a fraction like 1/8 or a count like 16, got {value!r}") from None
    elif isinstance(value, int):
        if value < 1:
            raise ValueError(f"a count of labelled images must be at least 1, got {value}")
        return value
    else:
        fraction = Fraction(value).limit_denominator(1024)
    if not 0 < fraction <= 1:
        raise ValueError(f"a fraction of labelled images must be in (0, 1], got {value!r}")
    return fraction


def split_label_budget(index: DatasetIndex, labeled: str | int | float, seed: int = 0,
                       val_fraction: float = DEFAULT_VAL_FRACTION) -> LabelBudget:
    """Deterministic for (dataset, labeled, seed): the same ids on every machine."""
    budget = parse_labeled(labeled)
    masked = sorted(index.labeled_ids)
    if index.val_ids is not None:
        val_ids = [i for i in index.val_ids if index.by_id[i].mask is not None]
    else:
        shuffled = masked[:]
        random.Random(f"val:{seed}").shuffle(shuffled)
        val_count = max(1, round(len(masked) * val_fraction)) if len(masked) > 1 else 0
        val_ids = sorted(shuffled[:val_count])
    val = set(val_ids)
    if index.train_ids is not None:
        train = [i for i in sorted(index.train_ids) if i not in val]
    else:
        train = [i for i in sorted(index.by_id) if i not in val]
    train_masked = [i for i in train if index.by_id[i].mask is not None]
    if not train_masked:
        raise ValueError("no masked training images are left after the validation split")
    count = budget if isinstance(budget, int) else max(1, round(len(train_masked) * budget))
    if count > len(train_masked):
        raise ValueError(f"the label budget asks for {count} labelled images but the training split has only "
                         f"{len(train_masked)} images with masks")
    shuffled = train_masked[:]
    random.Random(f"budget:{seed}").shuffle(shuffled)
    labeled_ids = sorted(shuffled[:count])
    chosen = set(labeled_ids)
    unlabeled_ids = [i for i in train if i not in chosen]
    return LabelBudget(labeled_ids, unlabeled_ids, val_ids)
