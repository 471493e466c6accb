"""The worker's side of one run: start its training process, keep its heartbeat, stop it.

The worker process never imports torch: it starts ``python -m workers.child`` for each
claimed run and, while the child trains, writes a heartbeat (and the last lines of the
run's log) on the run's row every ``SEGLAB_HEARTBEAT_SECONDS``. It asks the child to stop
(SIGTERM: checkpoint, flush, back to the queue) when the worker shuts down, kills it when
a cancel has been ignored for ``SEGLAB_CANCEL_GRACE_SECONDS`` or when the row says this
attempt is no longer current, and turns a child that died without recording an outcome
into a crash (re-queued from the checkpoint while restarts are left).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from webapp.experiments import lifecycle
from webapp.experiments.models import Experiment
from workers.child import die_with_parent
from workers.metric_writer import upsert_points
from workers.system_metrics import SystemSampler

ROOT = Path(__file__).resolve().parent.parent
LOG_NAME = "run.log"
LOG_TAIL_LINES = 40


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(max(0, os.path.getsize(path) - 64 * 1024))
            return "".join(deque(log.read().decode(errors="replace").splitlines(keepends=True), maxlen=lines))
    except OSError:
        return ""


def describe_exit(code: int, step: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else f"signal {-code}"
        hint = (" (out of memory?)" if -code == signal.SIGKILL
                else " (a crash in native code)" if -code == signal.SIGSEGV else "")
        return f"the run's process was killed by {name}{hint} at step {step}"
    return f"the run's process exited with code {code} at step {step} without recording an outcome"


def start_child(experiment: Experiment, log_path: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "workers.child", str(experiment.pk), str(experiment.attempt)],
                                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=die_with_parent)


def supervise(experiment: Experiment, shutting_down: Callable[[], bool] = lambda: False) -> None:
    """Run one claimed attempt of ``experiment`` to its end (or hand it back)."""
    pk, attempt = experiment.pk, experiment.attempt
    log_path = experiment.output_dir / LOG_NAME
    child = start_child(experiment, log_path)
    lifecycle.beat(pk, attempt, process_id=child.pid)
    sampler = SystemSampler(child.pid, images_per_step(experiment.config))
    last_sample = time.monotonic()
    asked_to_stop = False
    while True:
        try:
            code = child.wait(timeout=settings.SEGLAB_HEARTBEAT_SECONDS)
            break
        except subprocess.TimeoutExpired:
            pass
        row = lifecycle.beat(pk, attempt, log_tail=log_tail(log_path))
        if row is None:  # the reconciler gave this attempt up, or the run is gone
            _kill(child)
            return
        if time.monotonic() - last_sample >= settings.SEGLAB_SYSTEM_METRICS_SECONDS:
            record_system_metrics(row, sampler.sample(row.steps_per_second))
            last_sample = time.monotonic()
        if shutting_down() and not asked_to_stop:
            child.send_signal(signal.SIGTERM)
            asked_to_stop = True
        if row.cancel_requested and row.cancel_requested_at:
            ignored = (timezone.now() - row.cancel_requested_at).total_seconds()
            if ignored > settings.SEGLAB_CANCEL_GRACE_SECONDS:
                _kill(child)
                lifecycle.cancelled(pk, attempt, f"killed at step {row.current_step}: it ignored the cancel for "
                                                 f"{ignored:.0f} s")
                return
    Experiment.objects.filter(pk=pk, attempt=attempt).update(log_tail=log_tail(log_path))
    row = Experiment.objects.filter(pk=pk).values("status", "attempt", "current_step").first()
    if row and row["status"] == Experiment.Status.RUNNING and row["attempt"] == attempt:
        lifecycle.crash(pk, attempt, describe_exit(code, row["current_step"]))


def images_per_step(config: dict) -> int:
    """Labelled plus unlabelled images one training step reads, over all of the run's processes
    (no unlabelled ones for the supervised baseline)."""
    batch = int(config.get("batch_size", 1))
    per_process = batch if config.get("method", "supervised") == "supervised" else batch + int(
        config.get("unlabeled_batch_size") or batch)
    return per_process * int(config.get("gpus", 1))


def record_system_metrics(experiment: Experiment, values: dict[str, float]) -> None:
    upsert_points(experiment.pk, {(name, experiment.current_step): value for name, value in values.items()})


def _kill(child: subprocess.Popen) -> None:
    child.kill()
    child.wait()
