"""Cross-dataset evaluation: a trained checkpoint scored on another dataset with the same classes.

How well a model trained on one domain holds up on another (the seed note's section 2.4,
"generalisation") is read off the same scores as an in-domain evaluation: mIoU, per-class
IoU and the confusion matrix over the other dataset's labelled images, with the same
inference (``engine.evaluation``) the run's own validation used. Every labelled image of
the other dataset is scored: the run has seen none of them. A checkpoint predicts class
*indices*, so the two datasets must name the same classes in the same order;
``class_mismatches`` says which differ, and both the web request and this module ask it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.data import load_index
from engine.data.loaders import ValidationDataset
from engine.evaluation import Inference, evaluate, load_trained_model, validation_loader
from engine.reporting import EvaluationResult, PredictionSample
from engine.trainer import resolve_device


class ClassMismatch(ValueError):
    """The datasets' classes differ; ``problems`` lists every difference."""

    def __init__(self, problems: list[str]):
        super().__init__("the classes do not match the run's: " + "; ".join(problems))
        self.problems = problems


def class_mismatches(run_classes: list[str], dataset_classes: list[str]) -> list[str]:
    """Every difference between the run's class names and another dataset's, index by index
    (empty when they match). A checkpoint's output channel k means the run's class k, so the
    names must agree in order, not only as a set."""
    problems = []
    # The lists may differ in length; the classes past the shorter one are listed below.
    for index, (expected, found) in enumerate(zip(run_classes, dataset_classes, strict=False)):
        if expected != found:
            problems.append(f"class {index} is {found!r} here but {expected!r} in the run's dataset")
    for index in range(len(dataset_classes), len(run_classes)):
        problems.append(f"class {index} {run_classes[index]!r} of the run's dataset is missing here")
    for index in range(len(run_classes), len(dataset_classes)):
        problems.append(f"class {index} {dataset_classes[index]!r} here is not in the run's dataset")
    return problems


@dataclass
class TransferResult:
    step: int  # the checkpoint's training step
    result: EvaluationResult  # on the other dataset
    samples: list[PredictionSample]  # its first images, then its hardest
    in_domain: dict[str, Any] | None  # the run's own best validation scores, as the checkpoint keeps them
    num_images: int


def evaluate_transfer(checkpoint: str | Path, data: str | Path, device: str | None = None) -> TransferResult:
    """Score ``checkpoint`` on every labelled image of the dataset folder ``data``.

    ``device`` defaults to the run's own (``auto`` picks CUDA when there is one). Raises
    ``ClassMismatch`` when the classes differ and ``ValueError`` when nothing is labelled.
    """
    index = load_index(data)
    loaded = load_trained_model(checkpoint, torch.device("cpu"))  # its config names the device
    torch_device = resolve_device(device or loaded.config.device.device)
    loaded.model.to(torch_device)
    problems = class_mismatches(loaded.class_names, list(index.class_names))
    if problems:
        raise ClassMismatch(problems)
    ids = sorted(index.labeled_ids)
    if not ids:
        raise ValueError(f"the dataset at {index.root} has no images with masks to evaluate on")
    config = loaded.config
    images = ValidationDataset(index, ids, config.data.crop_size)
    loader = validation_loader(images, config.data.num_workers, torch_device)
    result, samples = evaluate(loaded.model, loader, len(index.class_names),
                               list(index.class_names), torch_device, Inference.from_config(config, torch_device),
                               loaded.step)
    return TransferResult(loaded.step, result, samples, loaded.best_evaluation, len(ids))
