"""The reporter protocol: the only way results leave the trainer.

The worker implements it over the database, the CLI over a progress bar, tests over a
list. ``should_stop`` is polled between steps: cancellation is cooperative.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    def log_metrics(self, step: int, metrics: dict[str, float]) -> None: ...

    def log_evaluation(self, step: int, result: EvaluationResult) -> None: ...

    def log_predictions(self, step: int, samples: list[PredictionSample]) -> None: ...

    def log_checkpoint(self, path: str, step: int, is_best: bool) -> None: ...

    def should_stop(self) -> bool: ...


class NullReporter:
    def log_metrics(self, step, metrics):
        pass

    def log_evaluation(self, step, result):
        pass

    def log_predictions(self, step, samples):
        pass

    def log_checkpoint(self, path, step, is_best):
        pass

    def should_stop(self):
        return False


class ConsoleReporter(NullReporter):
    """A tqdm progress bar with the latest losses, and one line per evaluation."""

    def __init__(self, total_steps: int):
        from tqdm import tqdm

        self.bar = tqdm(total=total_steps, unit="it", dynamic_ncols=True)
        self.step = 0

    def log_metrics(self, step, metrics):
        self.bar.update(step - self.step)
        self.step = step
        self.bar.set_postfix({name: f"{value:.4g}" for name, value in metrics.items() if name != "lr"})

    def log_evaluation(self, step, result):
        self.bar.write(f"step {step}: mIoU {100 * result.miou:.2f}  pixel accuracy {100 * result.pixel_accuracy:.2f}")

    def close(self) -> None:
        self.bar.close()
