"""Asking for a cross-dataset evaluation: the rules, checked before anything is stored.

The run must have succeeded and have its ``best.pt``; the other dataset must be another
one of the run's team, with the run's classes in the run's order (``engine.transfer.
class_mismatches``: the worker asks it again of the checkpoint, in case the dataset's
classes were edited in between). A refusal is a ``ValidationError`` naming its field; the
API and the page show its message as it is.
"""
from __future__ import annotations

import shutil

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from engine.transfer import class_mismatches
from webapp.datasets.models import Dataset
from webapp.experiments.models import Experiment
from webapp.teams.access import require_write, visible
from webapp.transfer import lifecycle
from webapp.transfer.models import TransferEvaluation

CHECKPOINT_NAME = "best.pt"


def run_class_names(experiment: Experiment) -> list[str]:
    """The classes the run's checkpoint predicts: as its evaluations recorded them (the dataset's
    classes may have been renamed since), else its dataset's."""
    recorded = experiment.evaluations.order_by("-step").values_list("class_names", flat=True).first()
    return list(recorded) if recorded else dataset_class_names(experiment.dataset)


def dataset_class_names(dataset: Dataset) -> list[str]:
    return [entry["name"] for entry in sorted(dataset.classes, key=lambda entry: entry.get("index", 0))]


def target_datasets(experiment: Experiment) -> QuerySet[Dataset]:
    """The datasets a run may be evaluated on: its team's, except its own."""
    return Dataset.objects.filter(team_id=experiment.team_id).exclude(pk=experiment.dataset_id).order_by("name")


def refusal(experiment: Experiment, dataset: Dataset) -> ValidationError | None:
    """Why ``experiment`` cannot be evaluated on ``dataset``, naming the field; None when it can."""
    if experiment.status != Experiment.Status.SUCCEEDED:
        return ValidationError({"status": f"the run is {experiment.status}; only a run that succeeded can be "
                                          "evaluated on another dataset"})
    if not (experiment.output_dir / CHECKPOINT_NAME).is_file():
        return ValidationError({"checkpoint": f"the run has no {CHECKPOINT_NAME} (its files are gone from the "
                                              "server's storage)"})
    if dataset.team_id != experiment.team_id:
        return ValidationError({"dataset": "choose a dataset of the run's own team"})
    if dataset.pk == experiment.dataset_id:
        return ValidationError({"dataset": f"{dataset.name!r} is the run's own dataset; its scores are on the "
                                           "run's page already"})
    problems = class_mismatches(run_class_names(experiment), dataset_class_names(dataset))
    if problems:
        return ValidationError({"dataset": f"the classes of {dataset.name!r} do not match the run's: "
                                           + "; ".join(problems)})
    return None


def request_transfer(experiment: Experiment, dataset: Dataset, user) -> TransferEvaluation:
    """Queue the evaluation of the run's best checkpoint on ``dataset``, or raise the refusal."""
    problem = refusal(experiment, dataset)
    if problem is not None:
        raise problem
    return lifecycle.create_queued(experiment, dataset, user)


def visible_evaluations(user) -> QuerySet[TransferEvaluation]:
    return visible(TransferEvaluation.objects.select_related("experiment", "dataset", "requested_by"), user,
                   team="experiment__team")


def delete_evaluation(evaluation: TransferEvaluation, user) -> None:
    """Remove the evaluation and its sample pictures (writers of the run's team).

    One still running is stopped by its worker: the next heartbeat finds the row gone
    (``workers.transfer_supervisor``), and a result it reports after is refused by its fencing.
    """
    require_write(evaluation.team, user)
    folder = evaluation.output_dir
    evaluation.delete()
    shutil.rmtree(folder, ignore_errors=True)
