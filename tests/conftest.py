"""Shared fixtures: three users (after healthchecks' hc/test.py), a team, datasets, a
real Celery worker process, and a headless Chromium driven by Playwright.

alice owns the team, bob is a read-only member, charlie belongs to another team.
"""
from __future__ import annotations

import ctypes
import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "password-for-tests"

torch.set_num_threads(2)
# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# between browser steps are still synchronous, so Django's async guard does not apply.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_configure(config):
    """A fast password hasher first, as Django's testing docs advise: PBKDF2's rounds cost
    0.3 s per user made and per login here, about a second per test. The default hashers
    stay listed after it, so a hash made by the real settings still verifies."""
    from django.conf import settings
    from django.conf.global_settings import PASSWORD_HASHERS

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]


@pytest.fixture(autouse=True, scope="session")
def media_root(tmp_path_factory):
    """Every test session writes its datasets and runs in a fresh MEDIA_ROOT."""
    from django.conf import settings

    root = tmp_path_factory.mktemp("media")
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture
def team_users(db):
    from django.contrib.auth import get_user_model

    from webapp.teams.models import Membership, Team

    User = get_user_model()
    team = Team.objects.create(name="Vision team")
    other = Team.objects.create(name="Other team")
    alice = User.objects.create_user("alice", password=PASSWORD)
    bob = User.objects.create_user("bob", password=PASSWORD)
    charlie = User.objects.create_user("charlie", password=PASSWORD)
    Membership.objects.create(team=team, user=alice, role=Membership.Role.OWNER)
    Membership.objects.create(team=team, user=bob, role=Membership.Role.VIEWER)
    Membership.objects.create(team=other, user=charlie, role=Membership.Role.OWNER)
    return {"team": team, "other_team": other, "alice": alice, "bob": bob, "charlie": charlie}


def zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory) -> Path:
    """A small demo dataset in the upload layout: 24 labelled + 8 unlabelled 32x32 images."""
    from engine.data.builtin.demo import generate_demo

    return generate_demo(tmp_path_factory.mktemp("demo") / "data", num_images=24, num_unlabeled=8, size=32)


@pytest.fixture(scope="session")
def demo_zip(demo_folder) -> bytes:
    return zip_folder(demo_folder)


@pytest.fixture
def dataset(team_users, demo_folder, tmp_path):
    import shutil

    from webapp.datasets.ingest import ingest_folder

    copy = tmp_path / "upload"
    shutil.copytree(demo_folder, copy)
    return ingest_folder(team_users["team"], "shapes", copy, team_users["alice"])


#: A run small enough for the CPU in a few seconds.
TINY_RUN = {"arch": "unet", "model_options": {"base_width": 4, "depth": 2}, "iters": 6, "batch_size": 4,
            "crop_size": 32, "labeled": "1/2", "eval_every": 3, "log_every": 2, "device": "cpu"}


def die_with_parent() -> None:
    """In the child, before exec: let the kernel kill it when pytest dies (PR_SET_PDEATHSIG).

    A killed or crashed pytest never runs fixture teardown; without this its worker lives
    on and takes the next test session's tasks from the same queues.
    """
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def purge_queues() -> None:
    """Drop every message waiting on the run queues (``control.purge`` knows only the default queue)."""
    from webapp.celery import app

    with app.connection_for_write() as connection:
        for queue in ("gpu", "cpu"):
            try:
                connection.default_channel.queue_purge(queue)
            except Exception:  # the queue does not exist yet
                pass


#: Job-backend timings for the worker processes the tests start: fast enough that a
#: killed worker's run is re-queued within seconds (the defaults are 5 s / 30 s / 30 s).
WORKER_TIMINGS = {"SEGLAB_HEARTBEAT_SECONDS": "0.5", "SEGLAB_HEARTBEAT_TIMEOUT": "4",
                  "SEGLAB_CANCEL_GRACE_SECONDS": "4", "SEGLAB_SYSTEM_METRICS_SECONDS": "1"}


class WorkerProcess:
    """A real `celery worker` process on the test database and Redis database, which a
    test may kill (as the OOM killer would) and start again."""

    def __init__(self, env: dict, log_path: Path, name: str):
        self.env, self.log_path, self.name = env, log_path, name
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> WorkerProcess:
        from webapp.celery import app

        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "webapp", "worker", "--pool", "solo", "-Q", "gpu,cpu",
             "-n", self.name, "--loglevel", "INFO"], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited: {self.log_path.read_text()[-3000:]}")
            if any(self.name in reply for reply in app.control.ping(timeout=1.0)):
                return self
        self.process.kill()
        raise RuntimeError(f"the Celery worker did not answer a ping within {timeout:.0f} s")

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, the message stays unacknowledged."""
        self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM: Celery's warm shutdown."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def ensure_running(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.start()


def database_url_of_tests() -> str:
    """The test database as DATABASE_URL, for the processes a test starts (workers, make run, sbatch)."""
    from django.db import connection

    database = connection.settings_dict
    return f"postgres://{database['USER']}@{database['HOST']}:{database['PORT'] or 5432}/{database['NAME']}"


@pytest.fixture(scope="session")
def worker_process(django_db_setup, django_db_blocker, media_root):
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url_of_tests()
    env["MEDIA_ROOT"] = str(media_root)
    env["OMP_NUM_THREADS"] = "1"
    env.update(WORKER_TIMINGS)
    purge_queues()
    worker = WorkerProcess(env, media_root / "worker.log", f"test-{os.getpid()}@localhost")
    yield worker
    if worker.process is not None:
        worker.stop(timeout=20)


@pytest.fixture
def without_worker(worker_process):
    """For tests that claim and train runs in their own process: the session's worker, if an
    earlier test started it, is stopped so that it cannot take their runs first."""
    if worker_process.process is not None:
        worker_process.stop()


@pytest.fixture
def celery_worker(worker_process):
    """The session's worker, (re)started if an earlier test killed it."""
    worker_process.ensure_running()
    return worker_process


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(predicate, timeout: float = 120.0, interval: float = 0.5, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


#: Where browser tests keep their screenshots (one per test, taken when it ends).
SCREENSHOTS = ROOT / "artifacts" / "e2e"


class PageWatch:
    """What a page did that a user would call broken: script errors, console errors and
    requests that left localhost (Plotly and htmx are served by the app, never a CDN)."""

    def __init__(self, page):
        self.errors: list[str] = []
        self.off_host: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on("console", self._console)
        page.on("request", self._request)
        page.on("response", self._response)

    def _response(self, response) -> None:
        # A page's own status (a refused form's 400, another team's 404) is the test's to assert;
        # a script, style, image or API call that fails is a broken page.
        if response.status >= 400 and response.request.resource_type != "document":
            self.errors.append(f"{response.status} for {response.request.method} {response.url}")

    def _console(self, message) -> None:
        # A failed load is also a response above, which names its URL.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def _request(self, request) -> None:
        host = request.url.split("/")[2] if "://" in request.url else ""
        if (request.url.startswith(("http://", "https://", "ws://"))
                and host.split(":")[0] not in ("localhost", "127.0.0.1")):
            self.off_host.append(request.url)

    def assert_clean(self, expected_errors: tuple[str, ...] = ()) -> None:
        """No script or console error (but those containing one of ``expected_errors``), no request off localhost."""
        unexpected = [e for e in self.errors if not any(part in e for part in expected_errors)]
        assert unexpected == [], unexpected
        assert self.off_host == [], self.off_host


@pytest.fixture
def page(browser, request):
    """A fresh browser context; ``page.watch`` records errors and off-host requests, and the
    page's last state is kept as ``artifacts/e2e/<test>.png``."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.watch = PageWatch(page)
    yield page
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in request.node.name)[:150]
    try:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        if page.url.startswith("http"):
            page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    except Exception:  # a page that crashed or closed keeps no screenshot; the test says why it failed
        pass
    context.close()


def login(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/experiments/")
