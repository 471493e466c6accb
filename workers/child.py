"""The training process of one run: ``python -m workers.child EXPERIMENT_ID ATTEMPT``.

A fresh process per run, so CUDA is initialised only here and all GPU memory goes back
when it exits, and an out-of-memory kill or a segfault in a kernel takes down this run,
never the worker. SIGTERM and SIGINT ask it to stop at the next step (checkpoint, flush,
back to the queue); the worker kills it outright only after a grace period. It dies with
its worker (PR_SET_PDEATHSIG), so a killed worker never leaves a run training unseen.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the heartbeat fencing still stops a stray run
        pass


def main(argv: list[str]) -> int:
    experiment_id, attempt = int(argv[0]), int(argv[1])
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    import django

    django.setup()
    from webapp.experiments.models import Experiment
    from workers import runner

    experiment = Experiment.objects.select_related("dataset").filter(pk=experiment_id).first()
    if experiment is None:
        return 0
    print(f"[seglab] experiment {experiment_id}, attempt {attempt}, pid {os.getpid()}", flush=True)
    outcome = runner.run(experiment, attempt, interrupted=stop.is_set)
    print(f"[seglab] {outcome}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
