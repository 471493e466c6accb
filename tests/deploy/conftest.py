"""A real one-node SLURM cluster on this machine, from Debian's slurm-wlm and munge.

Everything lives in a temporary folder: its own munge key and munged socket, slurm.conf,
state, spool and logs, and free ports, so it needs no systemd, touches nothing under
/etc and does not clash with another cluster (or another test session) on the host.
slurmctld, slurmd and munged run in the foreground as children of pytest and die with it
(PR_SET_PDEATHSIG). SLURM_CONF, set while the fixture lives, points sbatch, squeue,
sinfo and scancel at this cluster.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import die_with_parent

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scancel")
#: Daemons live in /usr/sbin, which a non-login PATH may lack.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
MUNGE_KEY_BYTES = 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def slurm_conf(root: Path, node: str, munge_socket: Path) -> str:
    """The least a one-node cluster needs: no accounting, no cgroups, root runs everything.

    RealMemory stays under the machine's (a node reporting less than its slurm.conf says
    is drained); CPUs as nproc counts them. NodeAddr 127.0.0.1 spares a DNS lookup.
    """
    return "\n".join([
        "ClusterName=seglab-test",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        f"AuthInfo=socket={munge_socket}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={len(os.sched_getaffinity(0))} RealMemory={memory_mb() // 2}"
        " State=UNKNOWN",
        f"PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


class SlurmCluster:
    def __init__(self, root: Path):
        self.root = root
        self.conf = root / "slurm.conf"
        self.env = {**os.environ, "PATH": SEARCH_PATH, "SLURM_CONF": str(self.conf)}
        self.daemons: dict[str, subprocess.Popen] = {}

    def start(self) -> SlurmCluster:
        for folder in ("munge", "state", "spool", "log"):
            (self.root / folder).mkdir()
        munge = self.root / "munge"
        munge_socket = munge / "munge.socket"
        # munged refuses a key others can read, and a socket whose folders others cannot enter.
        key = munge / "munge.key"
        key.write_bytes(os.urandom(MUNGE_KEY_BYTES))
        key.chmod(0o400)
        self.conf.write_text(slurm_conf(self.root, socket.gethostname().split(".")[0], munge_socket))
        self._spawn("munged", ["munged", "--foreground", f"--socket={munge_socket}", f"--key-file={key}",
                               f"--pid-file={munge / 'munged.pid'}", f"--seed-file={munge / 'munged.seed'}",
                               f"--log-file={self.root / 'log' / 'munged.log'}"])
        self._wait(munge_socket.exists, 20, "munged's socket")
        self._spawn("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf)])
        self._wait(lambda: self.run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip() == "idle", 60,
                   "the node to be idle in sinfo")
        return self

    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "w")
        self.daemons[name] = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                              preexec_fn=die_with_parent)
        log.close()

    def _wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.daemons.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.logs()}")
            if predicate():
                return
            time.sleep(0.5)
        raise RuntimeError(f"timed out after {timeout} s waiting for {what}:\n{self.logs()}")

    def run(self, *command: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(command, env={**self.env, **(env or {})}, capture_output=True, text=True,
                              check=check, timeout=30)

    def jobs(self) -> list[str]:
        return self.run("squeue", "-h", "-o", "%i").stdout.split()

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-tail:]}"
                         for path in sorted((self.root / "log").glob("*")))

    def stop(self) -> None:
        if "slurmctld" in self.daemons and self.daemons["slurmctld"].poll() is None:
            for job in self.jobs():
                self.run("scancel", job, check=False)
            self._wait_for_no_jobs(60)
        for name in reversed(list(self.daemons)):
            process = self.daemons[name]
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def _wait_for_no_jobs(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.jobs() and time.monotonic() < deadline:
            time.sleep(0.5)


def missing_slurm() -> list[str]:
    return [name for name in DAEMONS + CLIENTS if shutil.which(name, path=SEARCH_PATH) is None]


@pytest.fixture(scope="module")
def slurm_cluster():
    missing = missing_slurm()
    if missing:
        pytest.skip(f"needs Debian's slurm-wlm and munge (`make system-test-deps`); missing: {', '.join(missing)}")
    if os.geteuid() != 0:
        pytest.skip("the test cluster runs slurmctld and slurmd as root (SlurmUser=root, SlurmdUser=root)")
    # Not under pytest's tmp_path: munged wants every folder above its socket open to all.
    root = Path(tempfile.mkdtemp(prefix="seglab-slurm-"))
    root.chmod(0o755)
    cluster = SlurmCluster(root)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
