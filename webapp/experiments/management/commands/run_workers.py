"""One Celery worker per GPU of this host (or one CPU worker), supervised.

    python manage.py run_workers --gpus all      # every GPU NVML sees: gpu0@host, gpu1@host, ...
    python manage.py run_workers --gpus 0,1      # these GPUs
    python manage.py run_workers --gpus none     # one worker on the cpu queue

Each GPU worker takes the ``gpu`` queue with concurrency 1 and sees only its GPU
(``CUDA_VISIBLE_DEVICES``); a worker that dies is started again (``webapp.supervision``).
GPUs are counted through NVML, so this process never initialises CUDA.
"""
from __future__ import annotations

import os
import socket
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from webapp.supervision import Service, Supervisor


def count_gpus() -> int:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetCount()
    except Exception:  # no driver, no library: no GPU this process can see
        return 0


def plan_workers(gpus: str, available: int, host: str) -> list[tuple[str, str, str | None]]:
    """(worker name, queue, CUDA_VISIBLE_DEVICES) for each worker to start; CommandError when impossible."""
    if gpus == "none":
        return [(f"cpu@{host}", "cpu", "")]
    if gpus == "all":
        if available == 0:
            raise CommandError("no NVIDIA GPU found through NVML; use --gpus none for a CPU worker")
        indices = list(range(available))
    else:
        try:
            indices = [int(part) for part in gpus.split(",") if part.strip()]
        except ValueError:
            raise CommandError(f"--gpus {gpus!r}: expected all, none or GPU indices like 0,1") from None
        if not indices or len(set(indices)) != len(indices):
            raise CommandError(f"--gpus {gpus!r}: name each GPU once, like 0,1")
        missing = [i for i in indices if not 0 <= i < available]
        if missing:
            raise CommandError(f"--gpus {gpus!r}: GPU {missing[0]} does not exist; this host has {available} "
                               f"(0-{available - 1})" if available else f"--gpus {gpus!r}: this host has no GPU")
    return [(f"gpu{i}@{host}", "gpu", str(i)) for i in indices]


class Command(BaseCommand):
    help = "Start one supervised Celery worker per GPU of this host (or a CPU worker): --gpus all | 0,1 | none"

    def add_arguments(self, parser):
        parser.add_argument("--gpus", default="all", help="all, none, or comma-separated GPU indices (default all)")

    def handle(self, *args, gpus: str, **options):
        plan = plan_workers(gpus.strip().lower(), count_gpus(), socket.gethostname())
        services = []
        for name, queue, visible in plan:
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": visible or ""}
            command = [sys.executable, "-m", "celery", "-A", "webapp", "worker", "--pool", "solo", "--concurrency", "1",
                       "-Q", queue, "-n", name, "--loglevel", "INFO"]
            services.append(Service(name, command, env))
        self.stdout.write(f"workers: {', '.join(name for name, _, _ in plan)} "
                          f"on {settings.CELERY_BROKER_URL.split('@')[-1]}")
        self.stdout.flush()
        Supervisor(settings.BASE_DIR, services, say=lambda line: (self.stdout.write(line), self.stdout.flush())).run()
