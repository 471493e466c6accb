"""Dispatch latency: from the POST of an experiment to ``running``, and from a cancel to ``cancelled``.

Starts a real Celery worker (solo pool, queues gpu and cpu) on a scratch database
(created and dropped here) and the Redis of ``REDIS_URL``, uploads a small dataset, then
``--runs`` times: POSTs a long CPU run to ``/api/v1/experiments/`` and times until its row
is ``running`` on the idle worker (the claim), waits until it trains, POSTs
``/cancel/`` and times until it is ``cancelled`` (the training process stops at its
next step, checkpoints and exits). Targets (the Jobs issue): median under 1 s to
``running``, median under the 10 s bound to ``cancelled``.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/seglab REDIS_URL=redis://127.0.0.1:6379/14 \\
        PYTHONPATH=. python bench/dispatch.py [--runs 5] [--json bench/out/dispatch.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEDIA = Path(tempfile.mkdtemp(prefix="seglab-dispatch-"))
os.environ["MEDIA_ROOT"] = str(MEDIA)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from webapp.celery import app  # noqa: E402
from webapp.experiments.models import Experiment  # noqa: E402

RUN = {"arch": "unet", "model_options": {"base_width": 4, "depth": 2}, "iters": 100000, "batch_size": 4,
       "crop_size": 32, "labeled": "1/2", "eval_every": 50000, "log_every": 1, "device": "cpu"}
POLL_SECONDS = 0.005


def wait(predicate, timeout: float) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if predicate():
            return time.perf_counter() - start
        time.sleep(POLL_SECONDS)
    raise SystemExit(f"timed out after {timeout} s")


def start_worker() -> subprocess.Popen:
    database = connection.settings_dict
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MEDIA_ROOT": str(MEDIA),
           "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT'] or 5432}"
                           f"/{database['NAME']}"}
    name = f"dispatch-{os.getpid()}@localhost"
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "webapp", "worker", "--pool", "solo",
                               "-Q", "gpu,cpu", "-n", name, "--loglevel", "WARNING"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while not any(name in reply for reply in app.control.ping(timeout=1.0)):
        if time.monotonic() > deadline or worker.poll() is not None:
            raise SystemExit("the worker did not start")
    return worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path("bench/out/dispatch.json"))
    args = parser.parse_args(argv)
    if connection.vendor != "postgresql":
        print("bench/dispatch.py needs PostgreSQL: set DATABASE_URL=postgres://...", file=sys.stderr)
        return 2
    from engine.data.builtin.demo import generate_demo
    from webapp.datasets.ingest import ingest_folder
    from webapp.teams.models import Membership, Team

    original = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    with app.connection_for_write() as broker:
        for queue in ("gpu", "cpu"):
            try:
                broker.default_channel.queue_purge(queue)
            except Exception:  # no such queue yet
                pass
    worker = start_worker()
    rows = []
    try:
        team = Team.objects.create(name="bench")
        user = get_user_model().objects.create_user("bench", password="bench-password")
        Membership.objects.create(team=team, user=user, role=Membership.Role.OWNER)
        folder = generate_demo(MEDIA / "upload", num_images=24, num_unlabeled=8, size=32)
        dataset = ingest_folder(team, "shapes", folder, user)
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        for _ in range(args.runs):
            posted = time.perf_counter()
            response = client.post("/api/v1/experiments/", {"dataset": dataset.pk, "config": RUN},
                                   content_type="application/json")
            assert response.status_code == 201, response.content
            pk = response.json()["id"]
            wait(lambda pk=pk: Experiment.objects.filter(pk=pk, status="running").exists(), 60)
            to_running = time.perf_counter() - posted  # the POST's own time is part of the dispatch
            wait(lambda pk=pk: Experiment.objects.filter(pk=pk, current_step__gte=3).exists(), 120)
            asked = time.perf_counter()
            assert client.post(f"/api/v1/experiments/{pk}/cancel/").status_code == 200
            wait(lambda pk=pk: Experiment.objects.filter(pk=pk, status="cancelled").exists(), 60)
            rows.append({"to_running_s": to_running, "to_cancelled_s": time.perf_counter() - asked})
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        connection.creation.destroy_test_db(original, verbosity=0)
    summary = {key: {"median": statistics.median(r[key] for r in rows), "max": max(r[key] for r in rows)}
               for key in ("to_running_s", "to_cancelled_s")}
    print(f"{args.runs} runs on an idle CPU worker, {platform.node()}, heartbeat {settings.SEGLAB_HEARTBEAT_SECONDS} s")
    print("| from | to | median (s) | max (s) | target |")
    print("| --- | --- | ---: | ---: | --- |")
    print(f"| POST /api/v1/experiments/ | running | {summary['to_running_s']['median']:.3f} | "
          f"{summary['to_running_s']['max']:.3f} | median < 1 s |")
    print(f"| POST .../cancel/ | cancelled | {summary['to_cancelled_s']['median']:.3f} | "
          f"{summary['to_cancelled_s']['max']:.3f} | median < 10 s |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"runs": rows, "summary": summary, "machine": platform.node()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
