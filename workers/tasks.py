"""Celery tasks: thin adapters between the broker and the job backend.

A message only says "there is work on this queue"; which run is taken is decided in
PostgreSQL at claim time (queue position, ``SKIP LOCKED``), so a duplicate or stale
message is harmless and a lost one is re-sent by the reconciler (docs/jobs.md). This
module and what it imports never import torch: CUDA lives in the runs' own processes.
"""
from __future__ import annotations

import logging
import socket
import threading

from celery.signals import worker_ready, worker_shutting_down

from webapp.celery import app
from webapp.experiments import lifecycle
from webapp.experiments.reconcile import announce_waiting_work
from webapp.transfer import lifecycle as transfer_lifecycle
from workers.supervisor import supervise
from workers.transfer_supervisor import supervise_transfer

logger = logging.getLogger(__name__)
#: Set when the worker is asked to stop (Ctrl-C, SIGTERM): the run in progress stops at
#: its next step and is queued again, to resume from its last checkpoint.
SHUTTING_DOWN = threading.Event()


@worker_shutting_down.connect
def _stop_training(**_):
    SHUTTING_DOWN.set()


@worker_ready.connect
def _look_for_waiting_work(**_):
    """A worker that starts takes what was queued while none listened, without waiting for the
    reconciler: the message announcing it may be held by a worker that shut down meanwhile."""
    try:
        announced = announce_waiting_work()
    except Exception:  # the database is not reachable yet: the reconciler's next pass announces it
        logger.exception("looking for queued work at start failed")
        return
    if announced:
        logger.info("queued work waiting on %s: announced", ", ".join(announced))


@app.task(bind=True, name=lifecycle.TAKE_WORK_TASK)
def take_work(self, queue: str) -> int:
    """Evaluate and train what is queued on ``queue`` until nothing is left; returns how many.

    Cross-dataset evaluations go first: each takes seconds to minutes and someone is waiting
    for it, while a run may train for hours.
    """
    worker = self.request.hostname or socket.gethostname()
    done = 0
    while not SHUTTING_DOWN.is_set():
        evaluation = transfer_lifecycle.claim_next(queue, worker)
        if evaluation is not None:
            logger.info("transfer evaluation %s: attempt %s on %s", evaluation.pk, evaluation.attempt, worker)
            supervise_transfer(evaluation, SHUTTING_DOWN.is_set)
        else:
            experiment = lifecycle.claim_next(queue, worker)
            if experiment is None:
                break
            logger.info("experiment %s: attempt %s on %s", experiment.pk, experiment.attempt, worker)
            supervise(experiment, SHUTTING_DOWN.is_set)
        done += 1
    return done
