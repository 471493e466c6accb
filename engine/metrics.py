"""Segmentation metrics from one confusion matrix accumulated on the device.

Rows are ground truth, columns prediction. Classes absent from both the ground truth and
the prediction over the whole set are left out of every mean (torchmetrics' macro
averages do the same, and ``tests/engine/test_metrics.py`` checks we agree with them to
1e-6), so a validation split without a rare class is not punished for it. A class that
is predicted but never true stays in the means with IoU, Dice and accuracy 0: those
pixels are mistakes.
"""
from __future__ import annotations

import torch

IGNORE_INDEX = 255


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """(K, K) int64 counts on ``pred``'s device; pixels labelled ``ignore_index`` are skipped."""
    valid = target != ignore_index
    flat = target[valid].long() * num_classes + pred[valid].long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


class ConfusionMatrix:
    """Sums per-image confusion matrices on the device; one transfer at the end."""

    def __init__(self, num_classes: int, device: torch.device, ignore_index: int = IGNORE_INDEX):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.counts = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.counts += confusion_matrix(pred, target, self.num_classes, self.ignore_index)

    def scores(self) -> dict:
        return segmentation_scores(self.counts)


def _per_class(values: torch.Tensor, present: torch.Tensor) -> list[float | None]:
    return [float(value) if keep else None for value, keep in zip(values.tolist(), present.tolist())]


def _mean(values: torch.Tensor, present: torch.Tensor) -> float:
    return float(values[present].mean()) if present.any() else 0.0


def segmentation_scores(confusion: torch.Tensor) -> dict:
    """``miou``, ``iou`` (per class, None when absent), ``pixel_accuracy``, ``mean_accuracy``,
    ``accuracy`` (per class), ``dice`` (per class) and ``mean_dice``."""
    confusion = confusion.double()
    true_positive = confusion.diag()
    ground_truth = confusion.sum(1)
    predicted = confusion.sum(0)
    union = ground_truth + predicted - true_positive
    present = union > 0
    # clamp(min=1) only guards 0/0, which happens exactly for the absent classes dropped below.
    iou = true_positive / union.clamp(min=1)
    dice = 2 * true_positive / (ground_truth + predicted).clamp(min=1)
    accuracy = true_positive / ground_truth.clamp(min=1)
    total = confusion.sum()
    return {
        "miou": _mean(iou, present),
        "iou": _per_class(iou, present),
        "mean_dice": _mean(dice, present),
        "dice": _per_class(dice, present),
        "mean_accuracy": _mean(accuracy, present),
        "accuracy": _per_class(accuracy, present),
        "pixel_accuracy": float(true_positive.sum() / total) if total > 0 else 0.0,
    }
