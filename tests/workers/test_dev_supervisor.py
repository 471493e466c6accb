"""`make run`'s supervisor: a killed worker is started again and the web server stays up."""
import os
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from tests.conftest import ROOT, WORKER_TIMINGS, database_url_of_tests, die_with_parent, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PORT = 8765


def healthy() -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz/", timeout=2).status == 200
    except OSError:
        return False


def test_a_killed_worker_is_restarted_and_the_web_server_stays_up(tmp_path, media_root):
    from django.conf import settings

    env = {**os.environ, **WORKER_TIMINGS, "SEGLAB_PORT": str(PORT), "MEDIA_ROOT": str(media_root),
           "REDIS_URL": settings.CELERY_BROKER_URL, "DATABASE_URL": database_url_of_tests()}
    log_path = tmp_path / "dev.log"
    with open(log_path, "w") as log:
        dev = subprocess.Popen([sys.executable, "scripts/dev.py"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    try:
        wait_for(healthy, timeout=90, message="the web server")
        worker_pid = wait_for(lambda: re.search(r"started worker \(pid (\d+)\)", log_path.read_text()), timeout=30,
                              message="the worker's pid").group(1)
        os.kill(int(worker_pid), signal.SIGKILL)

        wait_for(lambda: len(re.findall(r"started worker \(pid \d+\)", log_path.read_text())) == 2, timeout=30,
                 message="a new worker")
        assert "worker exited with code -9; starting it again" in log_path.read_text()
        assert healthy()
        assert "started reconciler" in log_path.read_text()
    finally:
        dev.send_signal(signal.SIGTERM)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            dev.kill()
    assert not healthy()
