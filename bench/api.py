"""API latency on a large store: downsampled metrics and the experiments list.

On a scratch PostgreSQL database (created and dropped here) it stores 1,000,000 metric
points for one experiment (``--points``) and 10,000 experiments (``--experiments``),
then times, through Django's test client (the whole view, serializer and renderer; no
network):

* ``GET /api/v1/experiments/{id}/metrics/?names=loss&max_points=2000``, 50 times
  (target p95 under 150 ms), beside the full series as CSV (every point);
* ``GET /api/v1/experiments/`` (one page of 50) and its ``?ordering=-best_miou``,
  ``?method=`` and ``?tag=`` filters, and the experiments list page (``/experiments/``,
  HTML, with its queue positions), 50 times each (target p95 under 200 ms). One run in ten
  is queued, one in ten tagged, one in seven starred and one in thirteen commented, so the
  review columns and the queue positions cost what they would.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/seglab PYTHONPATH=. python bench/api.py [--json bench/out/api.json]
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

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from webapp.datasets.models import Dataset  # noqa: E402
from webapp.experiments.models import Experiment  # noqa: E402
from webapp.review.models import Comment, Star, Tag  # noqa: E402
from webapp.teams.models import Membership, Team  # noqa: E402
from workers.metric_writer import upsert_points  # noqa: E402

REQUESTS = 50


def timed(client: Client, url: str, count: int = REQUESTS) -> dict:
    durations = []
    for _ in range(count):
        start = time.perf_counter()
        response = client.get(url)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        durations.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise SystemExit(f"{url}: {response.status_code} {body[:300]!r}")
    durations.sort()
    return {"url": url, "requests": count, "p50_ms": 1000 * statistics.median(durations),
            "p95_ms": 1000 * durations[max(0, int(0.95 * count) - 1)], "bytes": len(body)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--experiments", type=int, default=10_000)
    parser.add_argument("--json", type=Path, default=Path("bench/out/api.json"))
    args = parser.parse_args(argv)
    if connection.vendor != "postgresql":
        print("bench/api.py measures PostgreSQL: set DATABASE_URL=postgres://...", file=sys.stderr)
        return 2
    original = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    rows = []
    try:
        team = Team.objects.create(name="bench")
        user = get_user_model().objects.create_user("bench", password="bench-password")
        Membership.objects.create(team=team, user=user, role=Membership.Role.OWNER)
        dataset = Dataset.objects.create(team=team, name="bench", storage_path="datasets/none", classes=[])
        methods = ["supervised", "fixmatch", "unimatch", "cps"]
        Experiment.objects.bulk_create([
            Experiment(team=team, dataset=dataset, name=f"run {i}", created_by=user, queue="cpu",
                       status=Experiment.Status.QUEUED if i % 10 == 0 else Experiment.Status.SUCCEEDED,
                       config={"arch": "unet", "method": methods[i % 4], "labeled": "1/8", "seed": i},
                       best_miou=(i % 997) / 997, position=i) for i in range(args.experiments)], batch_size=2000)
        watched = Experiment.objects.order_by("pk").first()
        ids = list(Experiment.objects.order_by("pk").values_list("pk", flat=True))
        tag = Tag.objects.create(team=team, name="baseline")
        tag.experiments.set(ids[::10])
        Star.objects.bulk_create([Star(user=user, experiment_id=pk) for pk in ids[::7]])
        Comment.objects.bulk_create([Comment(experiment_id=pk, author=user, body="a note") for pk in ids[::13]])
        start = time.perf_counter()
        for first in range(1, args.points + 1, 50_000):
            upsert_points(watched.pk, {("loss", step): 1.0 / step
                                       for step in range(first, min(first + 50_000, args.points + 1))})
        stored_seconds = time.perf_counter() - start
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")  # as autovacuum would: index-only scans need the visibility map
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        base = f"/api/v1/experiments/{watched.pk}"
        rows.append(timed(client, f"{base}/metrics/?names=loss&max_points=2000"))
        rows.append(timed(client, f"{base}/metrics-csv/?names=loss", count=3))
        rows.append(timed(client, "/api/v1/experiments/"))
        rows.append(timed(client, "/api/v1/experiments/?ordering=-best_miou"))
        rows.append(timed(client, "/api/v1/experiments/?method=unimatch&offset=2000"))
        rows.append(timed(client, "/api/v1/experiments/?tag=baseline"))
        rows.append(timed(client, "/experiments/"))
        rows.append(timed(client, "/experiments/?tag=baseline&sort=-best_miou"))
    finally:
        connection.creation.destroy_test_db(original, verbosity=0)
    print(f"{args.points:,} points for one run (stored in {stored_seconds:.1f} s), {args.experiments:,} experiments, "
          f"PostgreSQL {connection.pg_version // 10000}, {platform.node()}")
    print("| request | requests | p50 (ms) | p95 (ms) | response bytes |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| `{row['url'].replace(f'/{watched.pk}/', '/{id}/')}` | {row['requests']} | {row['p50_ms']:.1f} | "
              f"{row['p95_ms']:.1f} | {row['bytes']:,} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"points": args.points, "experiments": args.experiments, "machine": platform.node(),
                                     "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
