"""The worker's side of one cross-dataset evaluation: start its process, keep its heartbeat.

As for a run (``workers.supervisor``), the evaluation runs in its own process
(``python -m workers.child transfer ID ATTEMPT``), so the long-lived worker never imports torch and
never initialises CUDA. A process that exits without recording an outcome fails the
evaluation with the reason; a worker that shuts down stops the process and puts the
evaluation back in the queue (it starts over: there is nothing to resume).
"""
from __future__ import annotations

import subprocess
from collections.abc import Callable

from django.conf import settings

from webapp.transfer import lifecycle
from webapp.transfer.models import TransferEvaluation
from workers.child import describe_exit, kill, spawn
from workers.supervisor import log_tail

LOG_NAME = "evaluation.log"


def start_child(evaluation: TransferEvaluation) -> subprocess.Popen:
    return spawn("transfer", evaluation.pk, evaluation.attempt, evaluation.output_dir / LOG_NAME)


def supervise_transfer(evaluation: TransferEvaluation, shutting_down: Callable[[], bool] = lambda: False) -> None:
    """Run one claimed attempt of ``evaluation`` to its end (or hand it back to the queue)."""
    pk, attempt = evaluation.pk, evaluation.attempt
    child = start_child(evaluation)
    while True:
        try:
            code = child.wait(timeout=settings.SEGLAB_HEARTBEAT_SECONDS)
            break
        except subprocess.TimeoutExpired:
            pass
        if shutting_down():
            kill(child)
            lifecycle.interrupt(pk, attempt)
            return
        if not lifecycle.beat(pk, attempt):  # the reconciler gave it up, or it was deleted
            kill(child)
            return
    tail = log_tail(evaluation.output_dir / LOG_NAME, lines=5).strip()
    lifecycle.fail(pk, attempt, describe_exit("the evaluation's process", code) + (
        f"; its last output: {tail}" if tail else ""))
