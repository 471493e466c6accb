"""engine.metrics against torchmetrics (the reference implementation) on random inputs."""
from __future__ import annotations

import pytest
import torch
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassJaccardIndex,
)

from engine.metrics import IGNORE_INDEX, ConfusionMatrix, confusion_matrix, segmentation_scores

NUM_CLASSES = 6
TOLERANCE = 1e-6


@pytest.fixture
def predictions_and_targets() -> tuple[torch.Tensor, torch.Tensor]:
    """Class 4 is only ever predicted, class 5 never appears; a fifth of the pixels are ignored."""
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (3, 40, 50), generator=generator)
    target[torch.rand(target.shape, generator=generator) < 0.2] = IGNORE_INDEX
    pred = torch.randint(0, 5, target.shape, generator=generator)
    # A good share of correct pixels so the scores are not all near chance.
    agree = torch.rand(target.shape, generator=generator) < 0.5
    pred[agree & (target != IGNORE_INDEX)] = target[agree & (target != IGNORE_INDEX)]
    return pred, target


def reference(metric_class, pred: torch.Tensor, target: torch.Tensor, **kwargs) -> torch.Tensor:
    return metric_class(num_classes=NUM_CLASSES, ignore_index=IGNORE_INDEX, **kwargs)(pred, target).double()


def test_confusion_matrix_matches_torchmetrics(predictions_and_targets):
    pred, target = predictions_and_targets

    ours = confusion_matrix(pred, target, NUM_CLASSES)

    assert torch.equal(ours, reference(MulticlassConfusionMatrix, pred, target).long())


def test_scores_match_torchmetrics_with_ignored_pixels_and_absent_classes(predictions_and_targets):
    pred, target = predictions_and_targets

    scores = segmentation_scores(confusion_matrix(pred, target, NUM_CLASSES))

    assert scores["miou"] == pytest.approx(
        float(reference(MulticlassJaccardIndex, pred, target, average="macro")), abs=TOLERANCE)
    assert scores["pixel_accuracy"] == pytest.approx(
        float(reference(MulticlassAccuracy, pred, target, average="micro")), abs=TOLERANCE)
    assert scores["mean_accuracy"] == pytest.approx(
        float(reference(MulticlassAccuracy, pred, target, average="macro")), abs=TOLERANCE)
    assert scores["mean_dice"] == pytest.approx(
        float(reference(MulticlassF1Score, pred, target, average="macro")), abs=TOLERANCE)
    per_class = {
        "iou": reference(MulticlassJaccardIndex, pred, target, average="none"),
        "dice": reference(MulticlassF1Score, pred, target, average="none"),
        "accuracy": reference(MulticlassAccuracy, pred, target, average="none"),
    }
    for name, expected in per_class.items():
        for k in range(5):
            assert scores[name][k] == pytest.approx(float(expected[k]), abs=TOLERANCE), (name, k)


def test_class_absent_from_truth_and_prediction_is_none_and_left_out_of_the_mean(predictions_and_targets):
    pred, target = predictions_and_targets

    scores = segmentation_scores(confusion_matrix(pred, target, NUM_CLASSES))

    assert scores["iou"][5] is None and scores["dice"][5] is None
    assert scores["iou"][4] == 0.0  # predicted but never true: a mistake, kept in the mean
    assert scores["miou"] == pytest.approx(sum(scores["iou"][:5]) / 5)


def test_accumulating_per_image_equals_one_matrix_over_the_set(predictions_and_targets):
    pred, target = predictions_and_targets
    accumulated = ConfusionMatrix(NUM_CLASSES, torch.device("cpu"))

    for image_pred, image_target in zip(pred, target, strict=True):
        accumulated.update(image_pred, image_target)

    assert torch.equal(accumulated.counts, confusion_matrix(pred, target, NUM_CLASSES))
    assert accumulated.scores() == segmentation_scores(confusion_matrix(pred, target, NUM_CLASSES))


def test_everything_ignored_scores_zero_without_dividing_by_zero():
    target = torch.full((4, 4), IGNORE_INDEX)

    scores = segmentation_scores(confusion_matrix(torch.zeros(4, 4, dtype=torch.long), target, 3))

    assert scores["miou"] == 0.0 and scores["pixel_accuracy"] == 0.0
    assert scores["iou"] == [None, None, None]
