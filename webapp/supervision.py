"""Keeping a set of processes up: start each, start again any that dies, stop all on request.

Used by ``make run`` (scripts/dev.py) and ``python manage.py run_workers``. A process that
dies soon after its start waits longer before the next start (``BACKOFF_SECONDS``), so a
process that cannot start does not spin. Each runs in its own process group and is
stopped with SIGTERM, then SIGKILL after ``GRACE_SECONDS`` (a worker uses that time to
checkpoint its run and hand it back to the queue).
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

GRACE_SECONDS = 30
BACKOFF_SECONDS = (1, 2, 5, 10, 30)
#: A process that ran this long before dying starts again without waiting.
HEALTHY_SECONDS = 60


@dataclass
class Service:
    name: str
    command: list[str]
    env: dict[str, str]
    after_start: Callable[[], None] = lambda: None
    process: subprocess.Popen | None = None
    started: float = 0.0
    failures: int = 0


@dataclass
class Supervisor:
    cwd: Path
    services: list[Service] = field(default_factory=list)
    say: Callable[[str], None] = lambda line: print(line, flush=True)

    def start(self, service: Service) -> None:
        service.process = subprocess.Popen(service.command, cwd=self.cwd, env=service.env, start_new_session=True)
        service.started = time.monotonic()
        self.say(f"started {service.name} (pid {service.process.pid}): {' '.join(service.command)}")
        service.after_start()

    def run(self) -> int:
        """Start everything and keep it up until SIGTERM or Ctrl-C; then stop everything."""
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`cmd &`)
        try:
            for service in self.services:
                self.start(service)
            while True:
                time.sleep(0.5)
                for service in self.services:
                    if service.process.poll() is None:
                        continue
                    lived = time.monotonic() - service.started
                    service.failures = service.failures + 1 if lived < HEALTHY_SECONDS else 0
                    delay = BACKOFF_SECONDS[min(service.failures, len(BACKOFF_SECONDS) - 1)]
                    self.say(f"{service.name} exited with code {service.process.returncode}; "
                             f"starting it again in {delay} s")
                    time.sleep(delay)
                    self.start(service)
        except KeyboardInterrupt:
            return 0
        finally:
            self.stop()

    def stop(self) -> None:
        """Last started, first stopped: workers hand their runs back while Redis is still up."""
        deadline = time.monotonic() + GRACE_SECONDS
        for service in reversed(self.services):
            process = service.process
            if process is None:
                continue
            if process.poll() is None:
                self.say(f"stopping {service.name}")
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
