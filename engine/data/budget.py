"""Label budgets: which masked training images a run may use as labelled.

The unlabelled pool is the dataset's unlabelled images plus the masked training images
the budget leaves out; their masks stay hidden from training and serve only to measure
pseudo-label accuracy. The validation split is never used for training.

The validation split depends on the dataset only (its split files, or a fixed share of
the masked images chosen by a hash of their ids), never on the seed, so runs with
different seeds and budgets are scored on the same images. The labelled subset is drawn
with the run's seed, the same on every machine.
"""
from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from fractions import Fraction

from engine.data.index import DatasetIndex
from engine.options import shorten

DEFAULT_VAL_FRACTION = 0.2
#: The budgets that forms and sweeps offer, smallest first (the semi-supervised papers'
#: 1/16 ... 1/2 splits, then every masked training image).
STANDARD_BUDGETS = ("1/16", "1/8", "1/4", "1/2", "all")
#: No dataset holds more labelled images than files (``Limits.max_files``).
MAX_LABELED_COUNT = 100_000
BUDGET_HELP = "a fraction like 1/8, all (or 1/1) for every masked training image, or a count like 16"


@dataclass(frozen=True)
class LabelBudget:
    labeled_ids: list[str]
    unlabeled_ids: list[str]  # unmasked images + masked training images left out
    val_ids: list[str]
    hidden_ids: list[str] = field(default_factory=list)  # the masked ones among unlabeled_ids


def parse_labeled(value: str | int | float) -> Fraction | int:
    """`"1/8"`, `0.125` -> a fraction of the masked training images; `"16"`, `16` -> a count; `"all"`, `"1/1"` -> 1.

    A bare ``1`` is refused: beside 1/16 ... 1/2 a person reads it as "all", but as a
    count it means one labelled image.
    """
    shown = shorten(repr(value))
    if isinstance(value, bool):
        raise ValueError(f"expected {BUDGET_HELP}; got {shown}")
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "all":
            return Fraction(1)
        if "/" in text or "." in text:
            try:
                if len(text) > 40:  # Fraction() of a 5,000-digit string fails with Python's own words
                    raise ValueError(text)
                fraction = Fraction(text)
            except (ValueError, ZeroDivisionError):
                raise ValueError(f"expected {BUDGET_HELP}; got {shown}") from None
        else:
            if not (text.isascii() and text.isdigit()):
                raise ValueError(f"expected {BUDGET_HELP}; got {shown}")
            if len(text) > len(str(MAX_LABELED_COUNT)):
                raise ValueError(f"a count of labelled images must be between 2 and {MAX_LABELED_COUNT}, got {shown}")
            return parse_labeled(int(text))
    elif isinstance(value, int):
        if value == 1:
            raise ValueError("1 would mean a single labelled image; write all (or 1/1) for every masked training "
                             "image, or a count of 2 or more")
        if not 2 <= value <= MAX_LABELED_COUNT:
            raise ValueError(f"a count of labelled images must be between 2 and {MAX_LABELED_COUNT}, got {shown}")
        return value
    else:
        if not math.isfinite(value):
            raise ValueError(f"expected {BUDGET_HELP}; got {shown}")
        fraction = Fraction(value).limit_denominator(1024)
    if not 0 < fraction <= 1:
        raise ValueError(f"a fraction of labelled images must be in (0, 1], got {value!r}")
    return fraction


def _stable_order(ids: list[str]) -> list[str]:
    """A shuffle that depends on the ids alone: adding images barely moves the others."""
    return sorted(ids, key=lambda i: hashlib.sha256(i.encode()).hexdigest())


def validation_ids(index: DatasetIndex, val_fraction: float = DEFAULT_VAL_FRACTION) -> list[str]:
    """The split's val list; else masked images outside the train list; else a fixed share."""
    masked = sorted(index.labeled_ids)
    if index.val_ids is not None:
        return sorted(index.val_ids)
    if index.train_ids is not None:
        listed = set(index.train_ids)
        outside = [i for i in masked if i not in listed]
        if outside:
            return outside
    return sorted(_stable_order(masked)[:validation_count(len(masked), val_fraction)])


def validation_count(num_masked: int, val_fraction: float = DEFAULT_VAL_FRACTION) -> int:
    """How many masked images a dataset without split files holds out: the share, at least one, never all."""
    if num_masked < 2:
        return 0
    return min(num_masked - 1, max(1, round(num_masked * val_fraction)))


def split_label_budget(index: DatasetIndex, labeled: str | int | float, seed: int = 0,
                       val_fraction: float = DEFAULT_VAL_FRACTION) -> LabelBudget:
    """Deterministic for (dataset, labeled, seed): the same ids on every machine."""
    budget = parse_labeled(labeled)
    val_ids = validation_ids(index, val_fraction)
    val = set(val_ids)
    listed = set(index.train_ids) if index.train_ids is not None else None
    train_masked = [i for i in sorted(index.labeled_ids) if i not in val and (listed is None or i in listed)]
    if not train_masked:
        raise ValueError("no masked training images are left after the validation split")
    count = budget if isinstance(budget, int) else max(1, round(len(train_masked) * budget))
    if count > len(train_masked):
        raise ValueError(f"the label budget asks for {count} labelled images but the training split has only "
                         f"{len(train_masked)} images with masks")
    shuffled = train_masked[:]
    random.Random(f"budget:{seed}").shuffle(shuffled)
    labeled_ids = sorted(shuffled[:count])
    hidden_ids = sorted(shuffled[count:])
    unlabeled_ids = sorted(hidden_ids + index.unlabeled_ids)
    return LabelBudget(labeled_ids, unlabeled_ids, val_ids, hidden_ids)
