"""Running one experiment: plain functions, tested without Celery.

``claim`` makes delivery idempotent (a run is started once, whatever the broker does);
``run`` rebuilds the engine config from the row and trains; ``mark_failed`` turns any
failure into data the user sees on the experiment's page.
"""
from __future__ import annotations

import socket
from typing import Callable

from django.db import transaction
from django.utils import timezone

from engine.config import RunConfig
from engine.trainer import train
from webapp.experiments.launch import enqueue
from webapp.experiments.models import Experiment, ExperimentEvent
from workers.reporter import DatabaseReporter


def claim(experiment_id: int) -> Experiment | None:
    """Move a queued run to running; None when it is gone, cancelled or already claimed."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().filter(pk=experiment_id).first()
        if experiment is None or experiment.status != Experiment.Status.QUEUED:
            return None
        experiment.status = Experiment.Status.RUNNING
        experiment.started_at = timezone.now()
        experiment.worker = socket.gethostname()
        experiment.save(update_fields=["status", "started_at", "worker"])
        ExperimentEvent.objects.create(experiment=experiment, kind="started", message=f"on {experiment.worker}")
    return Experiment.objects.select_related("dataset").get(pk=experiment_id)


def engine_config(experiment: Experiment) -> RunConfig:
    return RunConfig.from_flat({**experiment.config, "data": str(experiment.dataset.path)})


def run(experiment: Experiment, interrupted: Callable[[], bool] = lambda: False) -> None:
    reporter = DatabaseReporter(experiment, interrupted)
    result = train(engine_config(experiment), reporter, output_dir=experiment.output_dir)
    reporter.flush()
    if result.stopped and interrupted():
        requeue(experiment, result.steps)
        return
    status = Experiment.Status.CANCELLED if result.stopped else Experiment.Status.SUCCEEDED
    Experiment.objects.filter(pk=experiment.pk).update(
        status=status, finished_at=timezone.now(), current_step=result.steps,
        final_miou=result.last.miou if result.last and not result.stopped else None,
        throughput=result.last.throughput if result.last else None,
    )
    message = f"final mIoU {100 * result.last.miou:.2f}" if result.last and not result.stopped else f"at step {result.steps}"
    ExperimentEvent.objects.create(experiment=experiment, kind=status, message=message)


def mark_failed(experiment_id: int, error: BaseException) -> None:
    message = f"{error.__class__.__name__}: {error}"
    with transaction.atomic():
        updated = Experiment.objects.filter(pk=experiment_id).exclude(status__in=Experiment.FINISHED).update(
            status=Experiment.Status.FAILED, error=message, finished_at=timezone.now(),
        )
        if updated:
            ExperimentEvent.objects.create(experiment_id=experiment_id, kind="failed", message=message)


def requeue(experiment: Experiment, step: int) -> None:
    """The worker is shutting down: queue the run again; it resumes from its last checkpoint."""
    Experiment.objects.filter(pk=experiment.pk).update(status=Experiment.Status.QUEUED)
    ExperimentEvent.objects.create(experiment=experiment, kind="interrupted",
                                   message=f"the worker stopped at step {step}; queued again to resume")
    transaction.on_commit(lambda: enqueue(experiment))
