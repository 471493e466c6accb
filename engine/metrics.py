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

from engine.data.masks import IGNORE_INDEX

#: Off-diagonal confusion cells kept per image (see ``image_scores``).
MAX_IMAGE_CONFUSIONS = 16


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

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Add one image; returns its own (K, K) counts, for its per-image scores."""
        counts = confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        self.counts += counts
        return counts

    def scores(self) -> dict:
        return segmentation_scores(self.counts)


def _per_class(values: torch.Tensor, present: torch.Tensor) -> list[float | None]:
    return [float(value) if keep else None for value, keep in zip(values.tolist(), present.tolist(), strict=True)]


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


def image_scores(confusion: torch.Tensor, max_confusions: int = MAX_IMAGE_CONFUSIONS) -> dict:
    """One image's ``miou``, ``pixel_accuracy``, ``pixels`` and ``confusions`` from its own (K, K) counts.

    The mean follows ``segmentation_scores``: over the classes present in this image's truth
    or prediction (None, like the pixel accuracy, when every pixel is ignored).

    ``confusions`` is the image's largest off-diagonal cells, ``[(true, predicted, pixels)]``
    largest first, zeros left out, at most ``max_confusions``: the full K x K counts grow with
    K squared (ADE20K's 150 classes: 22,350 off-diagonal cells per image, times 2,000
    validation images per evaluation), while the question they serve, "which images lose
    the most pixels of class i to class j", only needs each image's biggest mistakes. With
    K(K-1) <= ``max_confusions`` (binary and three-class datasets, and up to 4 classes at the
    default 16) the list is every non-zero cell, so the answer is exact; beyond that an image
    is missed for (i, j) only when it has ``max_confusions`` larger confusions of its own.

    Everything is computed on the device and read back in one transfer of 4 + 2 x
    ``max_confusions`` numbers; the evaluation loop already waits for the device once per
    image (the next image's copy from pageable memory synchronizes the stream).
    """
    num_classes = confusion.shape[0]
    counts = confusion.double()
    true_positive = counts.diag()
    union = counts.sum(1) + counts.sum(0) - true_positive
    present = union > 0
    iou = true_positive / union.clamp(min=1)
    off_diagonal = confusion.flatten().clone()
    off_diagonal[:: num_classes + 1] = 0
    pixels, cells = off_diagonal.topk(min(max_confusions, off_diagonal.numel()))
    totals = torch.stack([(iou * present).sum(), present.sum().double(), true_positive.sum(), counts.sum()])
    summary = torch.cat([totals, pixels.double(), cells.double()]).tolist()
    iou_sum, classes, correct, total = summary[:4]
    kept = len(pixels)
    confusions = sorted(((int(cell) // num_classes, int(cell) % num_classes, int(count))
                         for count, cell in zip(summary[4:4 + kept], summary[4 + kept:], strict=True) if count > 0),
                        key=lambda entry: (-entry[2], entry[0], entry[1]))
    return {
        "miou": iou_sum / classes if classes else None,
        "pixel_accuracy": correct / total if total else None,
        "pixels": int(total),
        "confusions": confusions,
    }
