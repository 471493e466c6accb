"""What the dataset page says about a dataset's splits, from what was stored at upload.

The validation split is the engine's (``engine.data.budget.validation_ids``): the
dataset's own val split when it has one; else, with only a train split, the masked
images that split leaves out; else a share of the masked images (the run's
``val_fraction``, 20% by default) chosen by a hash of the image names. It depends on
the dataset (and that share) only, never on a run's seed or label budget, so runs are
scored on the same images. Nothing here reads the dataset's files.
"""
from __future__ import annotations

from dataclasses import dataclass

from engine.data.budget import DEFAULT_VAL_FRACTION, validation_count
from webapp.datasets.models import Dataset


@dataclass(frozen=True)
class SplitSummary:
    labelled: int
    unlabelled: int
    validation: int | None  # None: not known from what was stored
    training_masked: int | None  # masked images left for label budgets
    how: str  # how the validation images are chosen, in the user's words


def split_summary(dataset: Dataset) -> SplitSummary:
    info = dataset.info or {}
    layout = info.get("layout", "images-masks")
    num_val, num_train = info.get("num_val"), info.get("num_train")
    if num_val is not None:
        validation = num_val
        how = (f"the {num_val} images of the dataset's own val split ({layout} layout), "
               "the same for every run")
    elif num_train is not None:
        validation = None
        how = ("the masked images that the dataset's train split does not list, "
               "the same for every run")
    else:
        validation = validation_count(dataset.num_labeled, DEFAULT_VAL_FRACTION)
        how = (f"the dataset has no split files: each run holds out its validation share of the masked images "
               f"({DEFAULT_VAL_FRACTION:.0%} by default, the launch form's \u201cValidation share\u201d), "
               "chosen by a hash of the image names, so every run with the same share, whatever its seed "
               "and label budget, is scored on the same images; the count shown is for the default share")
    # With a train split, only the masked images it lists train; their count was not stored.
    training = dataset.num_labeled - validation if validation is not None and num_train is None else None
    return SplitSummary(dataset.num_labeled, dataset.num_unlabeled, validation, training, how)


def class_table(dataset: Dataset) -> list[dict]:
    """The class table with every column present: a dataset uploaded before a column was
    computed has None there (the page shows "—")."""
    return [{"index": entry["index"], "name": entry["name"], "color": entry["color"],
             "pixel_share": entry.get("pixel_share"), "num_images": entry.get("num_images")}
            for entry in dataset.classes]
