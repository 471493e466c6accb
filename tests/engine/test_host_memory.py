"""engine.host_memory: freed host memory stays in the process and is reused without page faults.

Each case runs in its own interpreter: the allocator setting belongs to a process, and the
test process must keep glibc's defaults.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Allocates, writes and frees a 64 MiB tensor (above the largest mmap threshold glibc picks
#: itself, so its default serves it with a fresh mapping each time) and counts the minor page
#: faults of ten repeats after twenty: the heap takes some rounds to hold a free block that fits
#: the aligned request, as a training loop's does in its first steps.
FAULTS_PER_ALLOCATION = """
import json, resource, torch
from engine.host_memory import retain_freed_memory
applied = retain_freed_memory()
def write_once():
    tensor = torch.empty(16 << 20)
    tensor.fill_(1.0)
for _ in range(20):
    write_once()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    write_once()
print(json.dumps({"applied": applied, "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10}))
"""

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


def _python(code: str, setting: str | None, *args: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "SEGLAB_HOST_MEMORY"}
    if setting is not None:
        environment["SEGLAB_HOST_MEMORY"] = setting
    environment["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, *(("-c", code) if code else ()), *args], env=environment, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@glibc_only
def test_retained_memory_is_reused_without_page_faults():
    system = json.loads(_python(FAULTS_PER_ALLOCATION, "system").stdout)
    retained = json.loads(_python(FAULTS_PER_ALLOCATION, None).stdout)  # the default

    assert system == {"applied": False, "faults": system["faults"]}
    assert system["faults"] > 4096  # 64 MiB of 4 KiB pages mapped afresh, whatever the kernel zeroes ahead
    assert retained["applied"] is True
    assert retained["faults"] < system["faults"] / 50


def test_an_unknown_setting_is_a_clean_error_of_python_m_engine():
    completed = _python("", "mmap", "-m", "engine", "list")

    assert completed.returncode == 2
    assert "SEGLAB_HOST_MEMORY='mmap': expected one of retain, system" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_in_process_cli_leaves_the_allocator_alone(monkeypatch):
    """cli.main in a process it does not own (a test, a notebook) changes nothing process-wide."""
    from engine import cli, host_memory

    called = []
    monkeypatch.setattr(host_memory, "retain_freed_memory", lambda: called.append(True))
    monkeypatch.setattr(cli, "retain_freed_memory", lambda: called.append(True))
    assert cli.main(["list"]) == 0
    assert called == []
    assert cli.main(["list"], own_process=True) == 0
    assert called == [True]
