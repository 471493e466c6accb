"""Settings come from the environment only, and a malformed value stops start-up."""
import pytest
from django.core.exceptions import ImproperlyConfigured

from webapp.env import database_from_url, envbool, envint, envlist


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


def test_production_needs_a_secret_key():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", "import django; import os; os.environ['DJANGO_SETTINGS_MODULE']='webapp.settings'; django.setup()"],
                            env={"DEBUG": "false", "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert result.returncode != 0 and "SECRET_KEY must be set when DEBUG is off" in result.stderr
