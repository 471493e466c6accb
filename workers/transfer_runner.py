"""One cross-dataset evaluation, inside its own process (``python -m workers.child transfer ID ATTEMPT``).

Loads the run's ``best.pt``, scores it on every labelled image of the other dataset
(``engine.transfer.evaluate_transfer``), stores the scores beside the run's own best ones
and the samples as the overlay viewer's PNGs (image, grey index truth and prediction, as
``workers.reporter`` writes a run's), and records the outcome. Any exception fails the
evaluation with its message; the page shows it.
"""
from __future__ import annotations

import traceback

import torch

from engine.data import DatasetError
from engine.reporting import PredictionSample
from engine.transfer import ClassMismatch, TransferResult, evaluate_transfer
from webapp.transfer import lifecycle
from webapp.transfer.models import TransferEvaluation
from webapp.transfer.services import CHECKPOINT_NAME
from workers.reporter import save_samples


def store_samples(evaluation: TransferEvaluation, samples: list[PredictionSample]) -> list[dict]:
    """PNGs under the evaluation's folder, listed as ``Evaluation.predictions`` lists a run's."""
    root = evaluation.output_dir
    return save_samples(samples, root / "images", root / "truth", root / "prediction")


def results(evaluation: TransferEvaluation, transfer: TransferResult) -> dict:
    in_domain = transfer.in_domain or {}
    return {"step": transfer.step, "num_images": transfer.num_images, "miou": transfer.result.miou,
            "iou": transfer.result.iou, "pixel_accuracy": transfer.result.pixel_accuracy,
            "confusion_matrix": transfer.result.confusion_matrix, "class_names": transfer.result.class_names,
            "in_domain_miou": in_domain.get("miou"), "in_domain_iou": in_domain.get("iou") or [],
            "predictions": store_samples(evaluation, transfer.samples)}


def describe_error(error: BaseException) -> str:
    """The message the page shows."""
    if isinstance(error, torch.OutOfMemoryError):
        return "CUDA out of memory while evaluating; set the run's eval_mode to sliding with a smaller eval_crop"
    if isinstance(error, DatasetError):
        return f"dataset problem: {error}"
    if isinstance(error, (ClassMismatch, FileNotFoundError)):
        return str(error)
    return f"{error.__class__.__name__}: {error}"


def run_transfer(evaluation: TransferEvaluation, attempt: int) -> str:
    """Evaluate ``attempt`` of ``evaluation``; returns the outcome it recorded."""
    try:
        if not evaluation.dataset.path.is_dir():
            raise FileNotFoundError(f"the files of dataset {evaluation.dataset.name!r} are gone from the server's "
                                    "storage; upload it again")
        transfer = evaluate_transfer(evaluation.experiment.output_dir / CHECKPOINT_NAME, evaluation.dataset.path)
        lifecycle.succeed(evaluation.pk, attempt, **results(evaluation, transfer))
    except Exception as error:  # everything becomes data on the page
        traceback.print_exc()
        lifecycle.fail(evaluation.pk, attempt, describe_error(error))
        return "failed"
    return "succeeded"
