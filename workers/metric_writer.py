"""Metric points from the training loop to the database without the loop waiting on it.

``log`` only updates an in-memory batch (the last value wins for a (name, step)); a
batch is handed to a writer thread when it holds ``max_points`` points or is
``max_seconds`` old, and ``flush`` waits until everything handed over is written (the
trainer's evaluations, a cancel and the end of a run flush). Points are upserted on
(experiment, name, step), so a point written twice (a resumed run logging its steps
again) is stored once. On PostgreSQL a batch is one ``INSERT ... SELECT FROM unnest(...)``
statement; elsewhere (SQLite for ``make run``) Django's ``bulk_create``.

A write that fails is raised again in the training process at the next ``log`` or
``flush``, so a broken database fails the run instead of silently dropping its curves.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from django.db import connection, connections, transaction

from webapp.experiments.models import MetricPoint, MetricSummary

Batch = dict[tuple[str, int], float]
#: A batch is handed to the writer when it holds this many points...
MAX_POINTS = 5000
#: ...or when its first point is this old.
MAX_SECONDS = 1.0
_STOP = None
#: Each touched block's extremes, from its points (a rewritten step can lower a block's maximum).
SUMMARIZE_SQL = (
    f"INSERT INTO {MetricSummary._meta.db_table} "
    "(experiment_id, name, block, low_value, low_step, high_value, high_step) "
    f"SELECT experiment_id, name, step / {MetricSummary.BLOCK_STEPS}, "
    "(min(ARRAY[value, step::double precision]))[1], (min(ARRAY[value, step::double precision]))[2]::integer, "
    "(max(ARRAY[value, step::double precision]))[1], (max(ARRAY[value, step::double precision]))[2]::integer "
    f"FROM {MetricPoint._meta.db_table}")
SUMMARY_GROUPS = f" GROUP BY experiment_id, name, step / {MetricSummary.BLOCK_STEPS}"
SUMMARY_CONFLICT = (" ON CONFLICT (experiment_id, name, block) DO UPDATE SET low_value = EXCLUDED.low_value, "
                    "low_step = EXCLUDED.low_step, high_value = EXCLUDED.high_value, high_step = EXCLUDED.high_step")


def upsert_points(experiment_id: int, batch: Batch) -> None:
    """Store a batch (the one way points are written) and, on PostgreSQL, refresh the block
    summaries it touched."""
    if not batch:
        return
    if connection.vendor == "postgresql":
        table = MetricPoint._meta.db_table
        names, steps, values = zip(*((name, step, value) for (name, step), value in batch.items()), strict=True)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (experiment_id, name, step, value) "
                "SELECT %s, name, step, value FROM unnest(%s::text[], %s::integer[], %s::double precision[]) "
                "AS points(name, step, value) "
                "ON CONFLICT (experiment_id, name, step) DO UPDATE SET value = EXCLUDED.value",
                [experiment_id, list(names), list(steps), list(values)],
            )
            block = MetricSummary.BLOCK_STEPS
            first, last = min(steps) // block * block, (max(steps) // block + 1) * block - 1
            cursor.execute(f"{SUMMARIZE_SQL} WHERE experiment_id = %s AND name = ANY(%s) AND step BETWEEN %s AND %s "
                           f"{SUMMARY_GROUPS}{SUMMARY_CONFLICT}", [experiment_id, list(set(names)), first, last])
        return
    points = [MetricPoint(experiment_id=experiment_id, name=name, step=step, value=value)
              for (name, step), value in batch.items()]
    MetricPoint.objects.bulk_create(points, update_conflicts=True, unique_fields=["experiment", "name", "step"],
                                    update_fields=["value"])


class MetricWriter:
    """Buffers points for one experiment; ``background=False`` writes in the caller's thread
    (the path before the writer thread existed, kept for ``bench/ingest.py``)."""

    def __init__(self, experiment_id: int, after_write: Callable[[int], None] = lambda step: None,
                 background: bool = True, max_points: int = MAX_POINTS, max_seconds: float = MAX_SECONDS):
        self.experiment_id = experiment_id
        self.after_write = after_write  # called in the writing thread with the batch's last step
        self.background = background
        self.max_points, self.max_seconds = max_points, max_seconds
        self.batch: Batch = {}
        self.batch_started = time.monotonic()
        self.last_step = 0
        self.error: BaseException | None = None
        self.handed: queue.Queue = queue.Queue()
        self.thread: threading.Thread | None = None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self._raise_error()
        if not self.batch:
            self.batch_started = time.monotonic()
        for name, value in metrics.items():
            self.batch[(name, step)] = float(value)
        self.last_step = max(self.last_step, step)
        if len(self.batch) >= self.max_points or time.monotonic() - self.batch_started >= self.max_seconds:
            self._hand_over()

    def flush(self) -> None:
        """Return once every point logged so far is in the database."""
        self._hand_over(force=True)
        if self.background:
            self.handed.join()
        self._raise_error()

    def close(self) -> None:
        """Flush, then stop the writer thread."""
        try:
            self.flush()
        finally:
            if self.thread is not None:
                self.handed.put(_STOP)
                self.thread.join()
                self.thread = None

    def _hand_over(self, force: bool = False) -> None:
        if not self.batch and not force:
            return
        batch, self.batch = self.batch, {}
        if not self.background:
            self._write(batch, self.last_step)
            return
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name=f"metrics-{self.experiment_id}", daemon=True)
            self.thread.start()
        self.handed.put((batch, self.last_step))

    def _write(self, batch: Batch, step: int) -> None:
        with transaction.atomic():
            upsert_points(self.experiment_id, batch)
            self.after_write(step)

    def _run(self) -> None:
        try:
            while True:
                item = self.handed.get()
                try:
                    if item is _STOP:
                        return
                    if self.error is None:
                        self._write(*item)
                except BaseException as error:  # handed to the training thread
                    self.error = error
                finally:
                    self.handed.task_done()
        finally:
            connections.close_all()  # this thread's own connection

    def _raise_error(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise RuntimeError(f"writing metric points failed: {error.__class__.__name__}: {error}") from error
