"""The worker's side of one cross-dataset evaluation: start its process, keep its heartbeat.

As for a run (``workers.supervisor``), the evaluation runs in its own process
(``python -m workers.transfer_child``), so the long-lived worker never imports torch and
never initialises CUDA. A process that exits without recording an outcome fails the
evaluation with the reason; a worker that shuts down stops the process and puts the
evaluation back in the queue (it starts over: there is nothing to resume).
"""
from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable

from django.conf import settings

from webapp.transfer import lifecycle
from webapp.transfer.models import TransferEvaluation
from workers.child import die_with_parent
from workers.supervisor import ROOT, log_tail

LOG_NAME = "evaluation.log"


def start_child(evaluation: TransferEvaluation) -> subprocess.Popen:
    log_path = evaluation.output_dir / LOG_NAME
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "workers.transfer_child", str(evaluation.pk),
                                 str(evaluation.attempt)], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, preexec_fn=die_with_parent)


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
            _kill(child)
            lifecycle.interrupt(pk, attempt)
            return
        if not lifecycle.beat(pk, attempt):  # the reconciler gave it up, or it was deleted
            _kill(child)
            return
    lifecycle.fail(pk, attempt, describe_exit(code, log_tail(evaluation.output_dir / LOG_NAME, lines=5).strip()))


def describe_exit(code: int, tail: str) -> str:
    """Why the process ended without an outcome, for the page (no outcome was recorded when it gets here)."""
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else f"signal {-code}"
        reason = (f"the evaluation's process was killed by {name}"
                  + (" (out of memory?)" if -code == signal.SIGKILL else ""))
    else:
        reason = f"the evaluation's process exited with code {code} without recording an outcome"
    return reason + (f"; its last output: {tail}" if tail else "")


def _kill(child: subprocess.Popen) -> None:
    child.kill()
    child.wait()
