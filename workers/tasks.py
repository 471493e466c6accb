"""Celery tasks: thin adapters between the database and the engine (see runner.py)."""
from __future__ import annotations

import logging
import threading

from celery import Task
from celery.signals import worker_shutting_down

from webapp.celery import app
from workers import runner

logger = logging.getLogger(__name__)
#: Set when the worker is asked to stop (Ctrl-C, SIGTERM): the run in progress stops at
#: its next step and is queued again, to resume from its last checkpoint.
SHUTTING_DOWN = threading.Event()


@worker_shutting_down.connect
def _stop_training(**_):
    SHUTTING_DOWN.set()


class ExperimentTask(Task):
    """Failure handling lives here once: the error is stored on the row the user sees."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        logger.error("experiment %s failed: %s", args[0] if args else "?", exc)
        if args:
            runner.mark_failed(args[0], exc)


@app.task(base=ExperimentTask, name="workers.run_experiment")
def run_experiment(experiment_id: int) -> None:
    experiment = runner.claim(experiment_id)
    if experiment is None:
        logger.info("experiment %s is gone or already claimed; nothing to do", experiment_id)
        return
    runner.run(experiment, interrupted=SHUTTING_DOWN.is_set)
