"""Metric ingestion: points/s into PostgreSQL and the time the training loop spends logging.

A loop logs ``--metrics`` points per step for ``--steps`` steps, one step every
``--step-ms`` (the loop sleeps between steps, as a training loop waits on its GPU, so the
writer can run), through two paths, in the same run, on one scratch database (created
and dropped here, never the one in ``DATABASE_URL`` itself):

* ``writer thread``: ``workers.reporter.DatabaseReporter`` as runs use it: the loop only
  fills a batch; a background thread upserts batches of up to 5,000 points
  (``INSERT ... SELECT FROM unnest(...) ON CONFLICT``);
* ``inline bulk_create``: the path before the writer thread, one Django ``bulk_create``
  upsert in the loop's own thread once a second.

Throughput counts until every point is in the database (the final flush included);
the loop's time is measured around each ``log_metrics`` call: p99, the longest call
(a batch written in the loop stalls it), and the share of the loop spent there. Targets (the Jobs issue):
at least 50,000 points/s sustained, p99 under 1 ms inside the loop.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/seglab PYTHONPATH=. python bench/ingest.py \\
        [--steps 50000] [--metrics 10] [--step-ms 0.1] [--json bench/out/ingest.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402

from webapp.datasets.models import Dataset  # noqa: E402
from webapp.experiments.models import Experiment, MetricPoint  # noqa: E402
from webapp.teams.models import Team  # noqa: E402
from workers.reporter import DatabaseReporter  # noqa: E402

FLUSH_SECONDS = 1.0


class InlineBulkCreate:
    """The reporter's write path before the writer thread: a bulk_create in the loop, once a second."""

    def __init__(self, experiment: Experiment):
        self.experiment = experiment
        self.buffer: dict[tuple[str, int], float] = {}
        self.last_flush = time.monotonic()

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.buffer.update({(name, step): float(value) for name, value in metrics.items()})
        if time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        with transaction.atomic():
            MetricPoint.objects.bulk_create(
                [MetricPoint(experiment=self.experiment, name=n, step=s, value=v) for (n, s), v in self.buffer.items()],
                update_conflicts=True, unique_fields=["experiment", "name", "step"], update_fields=["value"])
        self.buffer = {}
        self.last_flush = time.monotonic()

    close = flush


def measure(name: str, make_reporter, experiment: Experiment, steps: int, metrics: int, step_seconds: float) -> dict:
    names = [f"loss_{i}" for i in range(metrics)]
    reporter = make_reporter(experiment)
    durations = []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        pause = start + step * step_seconds - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        values = {n: 1.0 / (step + i) for i, n in enumerate(names)}
        before = time.perf_counter()
        reporter.log_metrics(step, values)
        durations.append(time.perf_counter() - before)
    loop = time.perf_counter() - start
    reporter.close()
    elapsed = time.perf_counter() - start
    stored = MetricPoint.objects.filter(experiment=experiment).count()
    if stored != steps * metrics:
        raise SystemExit(f"{name}: {stored} points stored, {steps * metrics} logged")
    durations.sort()
    return {"path": name, "points": stored, "seconds": elapsed, "points_per_second": stored / elapsed,
            "log_p50_ms": 1000 * statistics.median(durations),
            "log_p99_ms": 1000 * durations[int(0.99 * len(durations))],
            "log_max_ms": 1000 * durations[-1], "share_of_loop": sum(durations) / loop}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50000)
    parser.add_argument("--step-ms", type=float, default=0.1, help="one step every this many ms (offered load)")
    parser.add_argument("--metrics", type=int, default=10, help="points per step")
    parser.add_argument("--json", type=Path, default=Path("bench/out/ingest.json"))
    args = parser.parse_args(argv)
    if connection.vendor != "postgresql":
        print("bench/ingest.py measures PostgreSQL: set DATABASE_URL=postgres://...", file=sys.stderr)
        return 2
    original = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        team = Team.objects.create(name="bench")
        dataset = Dataset.objects.create(team=team, name="bench", storage_path="datasets/none", classes=[])
        rows = []
        paths = [("writer thread", lambda e: DatabaseReporter(e, background=True)),
                 ("inline bulk_create", InlineBulkCreate)]
        for label, make in paths:
            experiment = Experiment.objects.create(team=team, dataset=dataset, name=label, config={},
                                                   status=Experiment.Status.RUNNING)
            rows.append(measure(label, make, Experiment.objects.select_related("dataset").get(pk=experiment.pk),
                                args.steps, args.metrics, args.step_ms / 1000))
    finally:
        connection.creation.destroy_test_db(original, verbosity=0)
    offered = args.metrics / (args.step_ms / 1000)
    print(f"{args.steps} steps x {args.metrics} points, a step every {args.step_ms} ms "
          f"({offered:,.0f} points/s offered), PostgreSQL {connection.pg_version // 10000}, {platform.node()}")
    print("| path | points | seconds | points/s stored | log_metrics p50 (ms) | p99 (ms) | max (ms) "
          "| share of the loop |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['path']} | {row['points']:,} | {row['seconds']:.2f} | {row['points_per_second']:,.0f} | "
              f"{row['log_p50_ms']:.4f} | {row['log_p99_ms']:.4f} | {row['log_max_ms']:.1f} | "
              f"{row['share_of_loop']:.1%} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"steps": args.steps, "metrics": args.metrics, "step_ms": args.step_ms,
                                     "machine": platform.node(),
                                     "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
