"""Settings come from the environment only, and a malformed value stops start-up."""
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.exceptions import ImproperlyConfigured

from webapp.env import database_from_url, envbool, envint, envlist

ROOT = Path(__file__).resolve().parents[2]


def test_envbool_refuses_a_malformed_value(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="DEBUG='maybe': expected true or false"):
        envbool("DEBUG", True)
    monkeypatch.setenv("DEBUG", "off")
    assert envbool("DEBUG", True) is False


def test_envint_and_envlist(monkeypatch):
    monkeypatch.setenv("N", "12")
    assert envint("N", 1) == 12
    monkeypatch.setenv("N", "12.5")
    with pytest.raises(ImproperlyConfigured, match="expected a whole number"):
        envint("N", 1)
    monkeypatch.setenv("HOSTS", "a.example, b.example,")
    assert envlist("HOSTS", []) == ["a.example", "b.example"]


def test_database_url_is_parsed_for_psycopg():
    database = database_from_url("postgres://seg%40lab:p%2Fw@db.internal:6543/runs")
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["USER"], database["PASSWORD"], database["HOST"], database["PORT"], database["NAME"]) == (
        "seg@lab", "p/w", "db.internal", "6543", "runs")
    with pytest.raises(ImproperlyConfigured, match="unsupported scheme 'mysql'"):
        database_from_url("mysql://x@y/z")
    with pytest.raises(ImproperlyConfigured, match="database name is missing"):
        database_from_url("postgres://x@y:5432/")


def settings_in_subprocess(code: str, env: dict) -> subprocess.CompletedProcess:
    """Load webapp.settings in a fresh interpreter with only ``env`` (and PATH) set."""
    script = "import os, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'webapp.settings'; django.setup(); " + code
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=120)


def test_debug_is_off_unless_a_developer_turns_it_on(tmp_path):
    key_file = str(tmp_path / "secret_key")
    default = settings_in_subprocess("from django.conf import settings; print(settings.DEBUG)",
                                     {"SECRET_KEY_FILE": key_file})
    assert default.stdout.strip() == "False", default.stderr
    on = settings_in_subprocess("from django.conf import settings; print(settings.DEBUG)",
                                {"SECRET_KEY_FILE": key_file, "DEBUG": "true"})
    assert on.stdout.strip() == "True", on.stderr


@pytest.mark.parametrize(("name", "default", "given", "read", "bad", "message"), [
    # Each run's process reads it (engine/host_memory.py); the web and worker check it first.
    ("SEGLAB_HOST_MEMORY", "retain", "System", "system", "jemalloc",
     "SEGLAB_HOST_MEMORY='jemalloc': expected one of retain, system"),
    # Read where the engine is imported (engine/models/resize.py); the web and worker check it first.
    ("SEGLAB_RESIZE_GRADIENT", "stencil", "PyTorch", "pytorch", "fast",
     "ImproperlyConfigured: SEGLAB_RESIZE_GRADIENT='fast': expected one of stencil, pytorch"),
])
def test_a_malformed_engine_process_setting_stops_start_up(tmp_path, name, default, given, read, bad, message):
    script = f"from django.conf import settings; print(settings.{name})"
    key_file = {"SECRET_KEY_FILE": str(tmp_path / "secret_key")}
    assert settings_in_subprocess(script, key_file).stdout.strip() == default
    assert settings_in_subprocess(script, {**key_file, name: given}).stdout.strip() == read
    refused = settings_in_subprocess(script, {**key_file, name: bad})
    assert refused.returncode != 0
    assert message in refused.stderr


def test_a_secret_key_is_generated_once_with_mode_600_and_reused(tmp_path):
    key_file = tmp_path / "var" / "secret_key"
    show = "from django.conf import settings; print(settings.SECRET_KEY)"

    first = settings_in_subprocess(show, {"SECRET_KEY_FILE": str(key_file)})
    second = settings_in_subprocess(show, {"SECRET_KEY_FILE": str(key_file)})

    assert first.returncode == 0, first.stderr
    key = first.stdout.strip()
    assert len(key) >= 50 and key == second.stdout.strip() == key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    given = settings_in_subprocess(show, {"SECRET_KEY_FILE": str(key_file), "SECRET_KEY": "from-the-environment"})
    assert given.stdout.strip() == "from-the-environment"


def test_an_unwritable_key_file_stops_start_up_with_a_message(tmp_path):
    result = settings_in_subprocess("", {"SECRET_KEY_FILE": "/proc/seglab/secret_key"})
    assert result.returncode != 0
    assert "set SECRET_KEY or SECRET_KEY_FILE" in result.stderr


def compose_environment(service: str) -> dict[str, str]:
    """The environment docker-compose.yml gives ``service``, with the two secrets it asks for."""
    rendered = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "config"], cwd=ROOT, capture_output=True,
                              text=True, env={"PATH": "/usr/bin:/bin", "SECRET_KEY": STRONG_KEY,
                                              "POSTGRES_PASSWORD": "a-database-password"}, check=True)
    environment = yaml.safe_load(rendered.stdout)["services"][service]["environment"]
    return {name: str(value) for name, value in environment.items()}


STRONG_KEY = "k3Y-" + "".join(chr(ord("a") + (i * 7) % 26) + str(i % 10) for i in range(30))


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Debian's docker-compose is installed by make test")
def test_check_deploy_is_clean_with_the_compose_stack_settings():
    env = compose_environment("web")
    assert env["DEBUG"] == "false" and env["SEGLAB_HTTPS"] == "true"

    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                            env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_healthz_answers_without_a_login_and_over_http_behind_the_https_redirect(db, settings):
    from django.test import Client

    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
    client = Client()  # its middleware reads the settings above
    assert client.get("/healthz/").json() == {"status": "ok"}
    assert client.get("/login/").status_code == 301
