"""The test fixtures' own guarantees: a killed pytest leaves no Celery worker behind."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.conftest import ROOT
from tests.conftest import process_alive as alive

PARENT = """
import subprocess, sys, time
from tests.conftest import die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=die_with_parent)
print(child.pid, flush=True)
time.sleep(60)
"""


def test_a_worker_started_by_the_fixture_dies_with_its_parent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.kill()  # as a killed pytest: no teardown runs
    parent.wait()
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the child outlived its killed parent"
