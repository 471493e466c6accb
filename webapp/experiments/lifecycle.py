"""A run's lifecycle: the one place where ``Experiment.status`` changes.

Each transition names the states it leaves, the state it enters and the event it
records, and runs in one transaction on the row locked with ``SELECT ... FOR UPDATE``,
so two processes can never both move a run (two deliveries of one message, a worker and
the reconciler, a user's cancel and the run's end). Transitions out of ``running`` carry
the attempt number the caller started (a fencing token): a worker that was given up for
dead and comes back cannot overwrite what the run's next attempt did.

::

    queued --claim--> running --succeed--> succeeded
      |  ^               |----fail-------> failed ----.
      |  |               |----cancel-----> cancelled -+--retry--> queued
      |  '--interrupt----|  (the worker stopped cleanly: not a crash)
      |  '--crash--------'  (its process died: re-queued while restarts are left, else failed)
      '--cancel--> cancelled

Re-queued runs keep their queue position, so a run that was interrupted goes on before
runs launched after it. Work is announced to the workers after the transaction commits
(``transaction.on_commit``): a message never points at a row that is not there yet.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from webapp.celery import app as celery_app
from webapp.experiments.models import Experiment, ExperimentEvent

Status = Experiment.Status
Kind = ExperimentEvent.Kind
TAKE_WORK_TASK = "workers.take_work"


@dataclass(frozen=True)
class Transition:
    sources: tuple[str, ...]
    target: str | None  # None: the status stays, only the event is written
    event: str


TRANSITIONS: dict[str, Transition] = {
    "claim": Transition((Status.QUEUED,), Status.RUNNING, Kind.STARTED),
    "succeed": Transition((Status.RUNNING,), Status.SUCCEEDED, Kind.SUCCEEDED),
    "fail": Transition((Status.QUEUED, Status.RUNNING), Status.FAILED, Kind.FAILED),
    "cancel": Transition((Status.QUEUED, Status.RUNNING), Status.CANCELLED, Kind.CANCELLED),
    "request_cancel": Transition((Status.RUNNING,), None, Kind.CANCEL_REQUESTED),
    "interrupt": Transition((Status.RUNNING,), Status.QUEUED, Kind.INTERRUPTED),
    "requeue": Transition((Status.RUNNING,), Status.QUEUED, Kind.REQUEUED),
    "retry": Transition((Status.FAILED, Status.CANCELLED), Status.QUEUED, Kind.RETRIED),
    "move": Transition((Status.QUEUED,), None, Kind.MOVED),
}


class TransitionRefused(ValueError):
    """A user asked for a change the run's state does not allow; the message says why."""


def _apply(experiment: Experiment, name: str, message: str = "", **changes: Any) -> Experiment:
    """Move a locked row through ``name``; the caller holds the transaction."""
    transition = TRANSITIONS[name]
    if transition.target is not None:
        experiment.status = transition.target
    for field, value in changes.items():
        setattr(experiment, field, value)
    experiment.save()
    ExperimentEvent.objects.create(experiment=experiment, kind=transition.event, message=message)
    return experiment


def _locked(experiment_id: int, name: str, attempt: int | None = None) -> Experiment | None:
    """The row, locked, when ``name`` may leave its state (and ``attempt`` is still current)."""
    experiment = Experiment.objects.select_for_update().filter(pk=experiment_id).first()
    if experiment is None or experiment.status not in TRANSITIONS[name].sources:
        return None
    if attempt is not None and experiment.attempt != attempt:
        return None
    return experiment


def _transition(experiment_id: int, name: str, message: str = "", attempt: int | None = None,
                **changes: Any) -> Experiment | None:
    with transaction.atomic():
        experiment = _locked(experiment_id, name, attempt)
        if experiment is None:
            return None
        return _apply(experiment, name, message, **changes)


def _back_of_the_queue() -> int:
    """A position after every run's."""
    return (Experiment.objects.aggregate(last=Max("position"))["last"] or 0) + 1


def announce(queue: str) -> None:
    """Tell the workers of ``queue`` that there is work; which run is decided at claim time."""
    celery_app.send_task(TAKE_WORK_TASK, args=[queue], queue=queue)


def _announce_on_commit(experiment: Experiment | None) -> Experiment | None:
    if experiment is not None:
        queue = experiment.queue
        transaction.on_commit(lambda: announce(queue))
    return experiment


# -- launch -----------------------------------------------------------------------------

def create_queued(**fields: Any) -> Experiment:
    """A new run at the back of its queue, announced once the caller's transaction commits."""
    with transaction.atomic():
        experiment = Experiment.objects.create(status=Status.QUEUED, position=_back_of_the_queue(), **fields)
        ExperimentEvent.objects.create(experiment=experiment, kind=Kind.QUEUED,
                                       message=f"on the {experiment.queue} queue")
        _announce_on_commit(experiment)
    return experiment


# -- the worker -------------------------------------------------------------------------

def claim_next(queue: str, worker: str) -> Experiment | None:
    """Start the first queued run of ``queue`` (by position); None when there is none.

    ``SKIP LOCKED``: workers claiming at the same moment take different runs instead of
    waiting on each other's row.
    """
    with transaction.atomic():
        experiment = (Experiment.objects.select_for_update(skip_locked=True)
                      .filter(queue=queue, status=Status.QUEUED).order_by("position", "created_at", "pk").first())
        if experiment is None:
            return None
        now = timezone.now()
        attempt = experiment.attempt + 1
        message = (f"attempt {attempt} on {worker}"
                   + (f", from step {experiment.current_step}" if experiment.current_step else ""))
        return _apply(experiment, "claim", message, attempt=attempt, worker=worker,
                      started_at=experiment.started_at or now, heartbeat_at=now, finished_at=None, error="",
                      traceback="", process_id=None)


def beat(experiment_id: int, attempt: int, **fields: Any) -> Experiment | None:
    """Record that the run's worker is alive; None when the run is no longer this attempt's."""
    fields["heartbeat_at"] = timezone.now()
    updated = Experiment.objects.filter(pk=experiment_id, status=Status.RUNNING, attempt=attempt).update(**fields)
    return Experiment.objects.get(pk=experiment_id) if updated else None


def succeed(experiment_id: int, attempt: int, message: str, **results: Any) -> Experiment | None:
    return _transition(experiment_id, "succeed", message, attempt, finished_at=timezone.now(), process_id=None,
                       cancel_requested=False, **results)


def fail(experiment_id: int, error: str, attempt: int | None = None, traceback: str = "") -> Experiment | None:
    return _transition(experiment_id, "fail", error, attempt, error=error, traceback=traceback,
                       finished_at=timezone.now(), process_id=None)


def cancelled(experiment_id: int, attempt: int | None, message: str) -> Experiment | None:
    """The run stopped for its cancel request (or was killed after ignoring it)."""
    return _transition(experiment_id, "cancel", message, attempt, finished_at=timezone.now(), process_id=None,
                       cancel_requested=False)


def interrupt(experiment_id: int, attempt: int, message: str) -> Experiment | None:
    """The worker is shutting down and its run checkpointed: back to the queue, not a crash."""
    with transaction.atomic():
        return _announce_on_commit(_transition(experiment_id, "interrupt", message, attempt, process_id=None))


def crash(experiment_id: int, attempt: int, reason: str) -> Experiment | None:
    """The run's process (or its whole worker) died: retried from its checkpoint while restarts are left.

    Celery's ``reject_on_worker_lost`` alone re-delivers such a run forever (celery#9082);
    here the count lives on the row and ends in ``failed`` with the reason.
    """
    with transaction.atomic():
        experiment = _locked(experiment_id, "requeue", attempt)
        if experiment is None:
            return None
        crashes = experiment.crashes + 1
        limit = settings.SEGLAB_MAX_RESTARTS
        if crashes > limit:
            return _apply(experiment, "fail",
                          f"{reason}; it died {crashes} times, more than the {limit} restarts allowed",
                          crashes=crashes, error=f"{reason} (after {limit} restarts from its checkpoint)",
                          finished_at=timezone.now(), process_id=None)
        experiment = _apply(experiment, "requeue", f"{reason}; restart {crashes} of {limit} from the last checkpoint",
                            crashes=crashes, process_id=None)
        return _announce_on_commit(experiment)


# -- what users do ----------------------------------------------------------------------

def request_cancel(experiment_id: int) -> Experiment:
    """A queued run is cancelled at once; a running one stops at its next step (and is killed
    after ``SEGLAB_CANCEL_GRACE_SECONDS`` if it does not)."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment_id)
        if experiment.status == Status.QUEUED:
            return _apply(experiment, "cancel", "cancelled before it started", finished_at=timezone.now())
        if experiment.status == Status.RUNNING and not experiment.cancel_requested:
            return _apply(experiment, "request_cancel", cancel_requested=True, cancel_requested_at=timezone.now())
        return experiment


def retry(experiment_id: int) -> Experiment:
    """A failed or cancelled run goes back to the queue and resumes from its last checkpoint."""
    with transaction.atomic():
        experiment = _locked(experiment_id, "retry")
        if experiment is None:
            raise TransitionRefused("only a failed or cancelled run can be retried")
        message = f"resumes from step {experiment.current_step}" if experiment.current_step else "starts again"
        experiment = _apply(experiment, "retry", message, crashes=0, cancel_requested=False, cancel_requested_at=None,
                            finished_at=None, error="", traceback="", position=_back_of_the_queue())
        return _announce_on_commit(experiment)


MOVES = ("top", "up", "down", "bottom")


def move(experiment_id: int, where: str) -> Experiment:
    """Reorder a queued run among the queued runs of its queue."""
    if where not in MOVES:
        raise TransitionRefused(f"where must be one of {', '.join(MOVES)}")
    with transaction.atomic():
        experiment = _locked(experiment_id, "move")
        if experiment is None:
            raise TransitionRefused("only a queued run can be moved in the queue")
        others = (Experiment.objects.select_for_update()
                  .filter(queue=experiment.queue, status=Status.QUEUED).exclude(pk=experiment.pk))
        if where in ("top", "bottom"):
            bound = others.aggregate(Min("position") if where == "top" else Max("position"))
            edge = next(iter(bound.values()))
            if edge is not None:
                experiment.position = edge - 1 if where == "top" else edge + 1
        else:
            ahead = where == "up"
            neighbour = (others.filter(position__lt=experiment.position).order_by("-position").first() if ahead
                         else others.filter(position__gt=experiment.position).order_by("position").first())
            if neighbour is not None:
                experiment.position, neighbour.position = neighbour.position, experiment.position
                neighbour.save(update_fields=["position"])
        return _apply(experiment, "move", f"moved {where}")


def queue_positions(queue: str) -> dict[int, int]:
    """Experiment id -> 1-based place in its queue, for the pages."""
    ids = (Experiment.objects.filter(queue=queue, status=Status.QUEUED)
           .order_by("position", "created_at", "pk").values_list("pk", flat=True))
    return {pk: place for place, pk in enumerate(ids, start=1)}
