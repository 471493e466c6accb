"""Segmentation metrics from one confusion matrix accumulated on the device.

Rows are ground truth, columns prediction. Classes absent from both the ground truth and
the prediction over the whole set are left out of the means (the convention of
mmsegmentation and torchmetrics' ``ignore absent`` behaviour), so a dataset without a
rare class is not punished for it.
"""
from __future__ import annotations

import torch

IGNORE_INDEX = 255


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """(K, K) int64 counts; pixels labelled ``ignore_index`` are skipped."""
    valid = target != ignore_index
    flat = target[valid].long() * num_classes + pred[valid].long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_scores(confusion: torch.Tensor) -> dict:
    confusion = confusion.double()
    true_positive = confusion.diag()
    ground_truth = confusion.sum(1)
    predicted = confusion.sum(0)
    union = ground_truth + predicted - true_positive
    present = union > 0
    iou = torch.where(present, true_positive / union.clamp(min=1), torch.full_like(union, float("nan")))
    dice = torch.where(present, 2 * true_positive / (ground_truth + predicted).clamp(min=1), torch.full_like(union, float("nan")))
    has_truth = ground_truth > 0
    accuracy = torch.where(has_truth, true_positive / ground_truth.clamp(min=1), torch.full_like(union, float("nan")))
    total = confusion.sum()
    return {
        "miou": float(iou[present].mean()) if present.any() else 0.0,
        "iou": [None if torch.isnan(v) else float(v) for v in iou],
        "dice": [None if torch.isnan(v) else float(v) for v in dice],
        "mean_dice": float(dice[present].mean()) if present.any() else 0.0,
        "pixel_accuracy": float(true_positive.sum() / total) if total > 0 else 0.0,
        "mean_accuracy": float(accuracy[has_truth].mean()) if has_truth.any() else 0.0,
    }
