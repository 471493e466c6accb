"""Datasets: inspection, label budgets, loaders, augmentations, built-in generators.

The layout a user uploads (a folder or a zip)::

    images/<stem>.<png|jpg|...>     every image; one without a mask is unlabelled
    masks/<stem>.png                 class index per pixel (255 = ignore): single-channel,
                                     palette, or RGB colours listed in classes.json;
                                     0/255 and 0/1 binary masks read as two classes
    classes.json                     optional: {"classes": [{"name", "color"}], "ignore_index": 255}
    splits/train.txt, splits/val.txt optional: one stem per line

Pascal VOC (JPEGImages/, SegmentationClass/) and Cityscapes (leftImg8bit/, gtFine/)
folders are recognised too (``engine.data.layouts``).

``inspect_dataset`` is the one validator: the web upload, the API and the CLI call it
and never re-implement it.
"""
from engine.data.budget import LabelBudget, parse_labeled, split_label_budget
from engine.data.description import DatasetInfo
from engine.data.errors import DatasetError
from engine.data.extract import extract_zip
from engine.data.index import DatasetIndex
from engine.data.inspect import inspect_dataset, load_index
from engine.data.layouts import Sample
from engine.data.limits import Limits
from engine.data.loaders import TrainingData, build_training_data

__all__ = [
    "DatasetError",
    "DatasetIndex",
    "DatasetInfo",
    "LabelBudget",
    "Limits",
    "Sample",
    "TrainingData",
    "build_training_data",
    "extract_zip",
    "inspect_dataset",
    "load_index",
    "parse_labeled",
    "split_label_budget",
]
