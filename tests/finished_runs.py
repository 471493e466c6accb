"""Finished runs made without training: their losses, evaluations and prediction samples written
through the worker's reporter (``workers.reporter.DatabaseReporter``), as a trained run writes them,
with the scores a test chooses."""
from __future__ import annotations

import torch

from engine.reporting import EvaluationResult, PredictionSample
from tests.conftest import TINY_RUN
from webapp.experiments import lifecycle
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import Experiment
from workers.reporter import DatabaseReporter

SAMPLE_IDS = ("val-a", "val-b")
SAMPLE_SIZE = 16
EVALUATION_STEPS = (3, 6)


def sample(sample_id: str, step: int, seed: int) -> PredictionSample:
    """A sample whose image and truth depend on its id alone and whose prediction on the run and step."""
    ids = torch.Generator().manual_seed(SAMPLE_IDS.index(sample_id))
    image = torch.randint(0, 256, (3, SAMPLE_SIZE, SAMPLE_SIZE), generator=ids, dtype=torch.uint8)
    truth = torch.randint(0, 3, (SAMPLE_SIZE, SAMPLE_SIZE), generator=ids, dtype=torch.uint8)
    guesses = torch.Generator().manual_seed(1000 * seed + step)
    prediction = torch.randint(0, 3, (SAMPLE_SIZE, SAMPLE_SIZE), generator=guesses, dtype=torch.uint8)
    return PredictionSample(sample_id, image, truth, prediction)


def finished_run(dataset, user, name: str, iou: list[float | None], throughput: float, seed: int = 0) -> Experiment:
    """A succeeded run of ``dataset`` evaluated at ``EVALUATION_STEPS``, ending with per-class ``iou``."""
    experiment = launch_experiment(dataset, dict(TINY_RUN), user, name)
    claimed = lifecycle.claim_next(experiment.queue, "test-fabricator")
    assert claimed.pk == experiment.pk
    class_names = [entry["name"] for entry in sorted(dataset.classes, key=lambda entry: entry.get("index", 0))]
    present = [value for value in iou if value is not None]
    final_miou = sum(present) / len(present)
    reporter = DatabaseReporter(claimed, attempt=claimed.attempt, background=False)
    try:
        for step in range(1, EVALUATION_STEPS[-1] + 1):
            reporter.log_metrics(step, {"loss": 2.0 / (step + seed)})
        for step in EVALUATION_STEPS:
            final = step == EVALUATION_STEPS[-1]
            scale = 1.0 if final else 0.5
            scores = [None if value is None else scale * value for value in iou]
            miou = final_miou * scale
            size = len(class_names)
            reporter.log_evaluation(step, EvaluationResult(
                step=step, miou=miou, iou=scores, pixel_accuracy=miou, mean_accuracy=miou, mean_dice=miou,
                dice=scores, confusion_matrix=[[1] * size for _ in range(size)], class_names=class_names,
                throughput=throughput if final else None))
            reporter.log_predictions(step, [sample(sample_id, step, seed) for sample_id in SAMPLE_IDS])
    finally:
        reporter.close()
    return lifecycle.succeed(experiment.pk, claimed.attempt, "fabricated", current_step=EVALUATION_STEPS[-1],
                             final_miou=final_miou, throughput=throughput)
