"""The reporter protocol: the only way results leave the trainer.

The worker implements it over the database, the CLI over a progress bar, tests over a
list. ``should_stop`` is polled between steps: cancellation is cooperative.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import torch


@dataclass
class ImageScore:
    """One validation image's own scores at one evaluation (``engine.metrics.image_scores``)."""

    id: str
    miou: float | None  # over the classes in this image's truth or prediction; None when all pixels are ignored
    pixel_accuracy: float | None
    pixels: int  # pixels scored (not ignored)
    confusions: list[tuple[int, int, int]]  # (true class, predicted class, pixels), largest first, bounded


@dataclass
class EvaluationResult:
    step: int
    miou: float
    iou: list[float | None]  # per class; None for a class absent from truth and prediction
    pixel_accuracy: float
    mean_accuracy: float
    mean_dice: float
    dice: list[float | None]
    confusion_matrix: list[list[int]]  # rows: ground truth, columns: prediction
    class_names: list[str]
    throughput: float | None = None  # images/s at the evaluation resolution, final evaluation only
    images: list[ImageScore] = field(default_factory=list, repr=False)  # every validation image, in loader order

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def without_images(self) -> EvaluationResult:
        """The summary alone, as checkpoints keep it: per-image scores are the reporter's to store."""
        return replace(self, images=[])


@dataclass
class PredictionSample:
    id: str
    image: torch.Tensor  # (3, H, W) uint8
    ground_truth: torch.Tensor  # (H, W) uint8, 255 = ignore
    prediction: torch.Tensor  # (H, W) uint8


@dataclass
class RunResult:
    steps: int
    stopped: bool  # True when should_stop() ended the run early
    best: EvaluationResult | None
    last: EvaluationResult | None
    checkpoint: str | None = None  # last.pt
    metrics: dict[str, float] = field(default_factory=dict)  # the last logged loss means and lr
    best_checkpoint: str | None = None  # best.pt


class Reporter(Protocol):
    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """Every ``log_every`` steps and at the last one: loss means since the last call, and ``lr``."""

    def log_evaluation(self, step: int, result: EvaluationResult) -> None:
        """Every ``evaluation_interval`` steps and at the end (the final one carries ``throughput``)."""

    def log_predictions(self, step: int, samples: list[PredictionSample]) -> None:
        """With each evaluation: the same first validation images every time, then that
        evaluation's hardest ones (lowest own mIoU), each image once."""

    def log_checkpoint(self, path: str, step: int, is_best: bool) -> None:
        """After writing last.pt (each evaluation, and when stopped) or best.pt (mIoU improved)."""

    def should_stop(self) -> bool:
        """Polled before every step; True saves last.pt and ends the run with ``stopped=True``."""


class NullReporter:
    """Discards everything and never stops the run; subclass it to keep only what you need."""

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def log_evaluation(self, step: int, result: EvaluationResult) -> None:
        pass

    def log_predictions(self, step: int, samples: list[PredictionSample]) -> None:
        pass

    def log_checkpoint(self, path: str, step: int, is_best: bool) -> None:
        pass

    def should_stop(self) -> bool:
        return False


class ConsoleReporter(NullReporter):
    """A tqdm progress bar with the latest losses, and one line per evaluation."""

    def __init__(self, total_steps: int):
        from tqdm import tqdm

        self.bar = tqdm(total=total_steps, unit="it", dynamic_ncols=True)
        self.step = 0

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.bar.update(step - self.step)
        self.step = step
        self.bar.set_postfix({name: f"{value:.4g}" for name, value in metrics.items() if name != "lr"})

    def log_evaluation(self, step: int, result: EvaluationResult) -> None:
        self.bar.write(f"step {step}: mIoU {100 * result.miou:.2f}  pixel accuracy {100 * result.pixel_accuracy:.2f}")

    def close(self) -> None:
        self.bar.close()
