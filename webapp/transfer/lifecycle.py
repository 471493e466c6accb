"""A cross-dataset evaluation's lifecycle: the one place where ``TransferEvaluation.status`` changes.

::

    request --> queued --claim--> running --succeed--> succeeded
                  ^                  |------fail-----> failed
                  '----interrupt-----'  (its worker shut down: evaluated again from the start)

It rides on the runs' queues (docs/jobs.md, "Cross-dataset evaluations"): a request is
announced with the runs' own doorbell (``take_work`` on the run's queue), and the worker
that answers claims queued evaluations before queued runs, with ``SKIP LOCKED`` as
``lifecycle.claim_next`` does. An evaluation is short and holds nothing worth resuming, so a
process that died or a worker that stopped sending heartbeats fails it with the reason
(the user asks again), and a worker that shuts down cleanly puts it back in the queue.
Transitions out of ``running`` carry the attempt (a fencing token), as a run's do.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from webapp.datasets.models import Dataset
from webapp.experiments import lifecycle as run_lifecycle
from webapp.experiments.models import Experiment
from webapp.transfer.models import TransferEvaluation

Status = TransferEvaluation.Status


def create_queued(experiment: Experiment, dataset: Dataset, user) -> TransferEvaluation:
    """Queue the evaluation and ring the run queue's doorbell once the caller's transaction commits."""
    with transaction.atomic():
        evaluation = TransferEvaluation.objects.create(experiment=experiment, dataset=dataset, queue=experiment.queue,
                                                       status=Status.QUEUED, requested_by=user)
        transaction.on_commit(lambda: run_lifecycle.announce(evaluation.queue))
    return evaluation


def claim_next(queue: str, worker: str) -> TransferEvaluation | None:
    """Start the oldest queued evaluation of ``queue``; None when there is none."""
    with transaction.atomic():
        evaluation = (TransferEvaluation.objects.select_for_update(skip_locked=True)
                      .filter(queue=queue, status=Status.QUEUED).order_by("requested_at", "pk").first())
        if evaluation is None:
            return None
        TransferEvaluation.objects.filter(pk=evaluation.pk).update(
            status=Status.RUNNING, attempt=evaluation.attempt + 1, worker=worker, heartbeat_at=timezone.now(), error="")
    return TransferEvaluation.objects.select_related("experiment", "dataset").get(pk=evaluation.pk)


def _finish(evaluation_id: int, attempt: int | None, **changes: Any) -> bool:
    """Apply ``changes`` while the row is running (this attempt's, when given); True when it was."""
    rows = TransferEvaluation.objects.filter(pk=evaluation_id, status=Status.RUNNING)
    if attempt is not None:
        rows = rows.filter(attempt=attempt)
    return rows.update(**changes) == 1


def beat(evaluation_id: int, attempt: int) -> bool:
    """Its worker is alive; False when the evaluation is no longer this attempt's."""
    return _finish(evaluation_id, attempt, heartbeat_at=timezone.now())


def succeed(evaluation_id: int, attempt: int, **results: Any) -> bool:
    return _finish(evaluation_id, attempt, status=Status.SUCCEEDED, finished_at=timezone.now(), **results)


def fail(evaluation_id: int, attempt: int | None, error: str) -> bool:
    return _finish(evaluation_id, attempt, status=Status.FAILED, error=error, finished_at=timezone.now())


def interrupt(evaluation_id: int, attempt: int) -> bool:
    """Its worker shut down: back to the queue, announced again."""
    with transaction.atomic():
        queued = _finish(evaluation_id, attempt, status=Status.QUEUED, worker="", heartbeat_at=None)
        if queued:
            queue = TransferEvaluation.objects.values_list("queue", flat=True).get(pk=evaluation_id)
            transaction.on_commit(lambda: run_lifecycle.announce(queue))
    return queued


def fail_stale() -> list[int]:
    """For the reconciler: running evaluations whose worker stopped sending heartbeats fail with the reason."""
    stale_before = timezone.now() - timedelta(seconds=settings.SEGLAB_HEARTBEAT_TIMEOUT)
    stale = TransferEvaluation.objects.filter(Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True),
                                              status=Status.RUNNING)
    failed = []
    for evaluation in stale:
        reason = f"its worker {evaluation.worker or '?'} stopped sending heartbeats; evaluate it again"
        if fail(evaluation.pk, evaluation.attempt, reason):
            failed.append(evaluation.pk)
    return failed


def queued_queues() -> set[str]:
    """Queues with evaluations waiting, for the reconciler's doorbell."""
    return set(TransferEvaluation.objects.filter(status=Status.QUEUED).values_list("queue", flat=True).distinct())
