"""The process of one piece of work: ``python -m workers.child KIND ID ATTEMPT``.

KIND is ``run`` (one attempt of a training run, ``workers.runner``) or ``transfer`` (one
cross-dataset evaluation, ``workers.transfer_runner``). A fresh process per attempt, so
CUDA is initialised only here and all GPU memory goes back when it exits, and an
out-of-memory kill or a segfault in a kernel takes down this attempt, never the worker.
SIGTERM and SIGINT ask a run to stop at the next step (checkpoint, flush, back to the
queue); the worker kills it outright only after a grace period. It dies with its worker
(PR_SET_PDEATHSIG), so a killed worker never leaves work running unseen.

The supervisors (``workers.supervisor``, ``workers.transfer_supervisor``) start it with
``spawn`` and explain its end with ``describe_exit``.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from engine.host_memory import retain_freed_memory

ROOT = Path(__file__).resolve().parent.parent
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the heartbeat fencing still stops a stray run
        pass


def spawn(kind: str, pk: int, attempt: int, log_path: Path) -> subprocess.Popen:
    """Start ``python -m workers.child KIND PK ATTEMPT`` with its output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "workers.child", kind, str(pk), str(attempt)], cwd=ROOT,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=die_with_parent)


def kill(child: subprocess.Popen) -> None:
    child.kill()
    child.wait()


def describe_exit(subject: str, code: int, when: str = "") -> str:
    """Why ``subject`` ("the run's process") ended without recording an outcome; ``when``: " at step 40"."""
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else f"signal {-code}"
        hints = {signal.SIGKILL.value: " (out of memory?)", signal.SIGSEGV.value: " (a crash in native code)"}
        hint = hints.get(-code, "")
        return f"{subject} was killed by {name}{hint}{when}"
    return f"{subject} exited with code {code}{when} without recording an outcome"


def _run(pk: int, attempt: int, interrupted: Callable[[], bool]) -> str | None:
    from webapp.experiments.models import Experiment
    from workers import runner

    experiment = Experiment.objects.select_related("dataset").filter(pk=pk).first()
    return None if experiment is None else str(runner.run(experiment, attempt, interrupted=interrupted))


def _transfer(pk: int, attempt: int, interrupted: Callable[[], bool]) -> str | None:
    from webapp.transfer.models import TransferEvaluation
    from workers.transfer_runner import run_transfer

    evaluation = TransferEvaluation.objects.select_related("experiment", "dataset").filter(pk=pk).first()
    return None if evaluation is None else str(run_transfer(evaluation, attempt))


#: KIND -> what the process does with (id, attempt, interrupted); None when the row is gone.
WORK: dict[str, Callable[[int, int, Callable[[], bool]], str | None]] = {"run": _run, "transfer": _transfer}


def main(argv: list[str]) -> int:
    kind, pk, attempt = argv[0], int(argv[1]), int(argv[2])
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    retain_freed_memory()  # one attempt per process: its peak host memory is released at exit
    import django

    django.setup()
    print(f"[seglab] {kind} {pk}, attempt {attempt}, pid {os.getpid()}", flush=True)
    outcome = WORK[kind](pk, attempt, stop.is_set)
    if outcome is not None:
        print(f"[seglab] {outcome}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
