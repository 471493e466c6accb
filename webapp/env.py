"""Strict environment parsing (after healthchecks' ``envbool``/``envint``).

A malformed value stops start-up with ImproperlyConfigured naming the variable, instead
of silently falling back to a default.
"""
from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

from django.core.exceptions import ImproperlyConfigured


def envstr(name: str, default: str) -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r}: expected true or false")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r}: expected a whole number") from None


def envfloat(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r}: expected a number") from None
    if not (number >= 0 and number != float("inf")):
        raise ImproperlyConfigured(f"{name}={value!r}: expected a finite number of at least 0")
    return number


def envsetting(read: Callable[[], str]) -> str:
    """A setting another module reads from the environment itself; its ValueError stops start-up."""
    try:
        return read()
    except ValueError as error:
        raise ImproperlyConfigured(str(error)) from None


def envlist(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def database_from_url(url: str) -> dict:
    """``postgres://user:password@host:port/name`` -> a Django DATABASES entry (psycopg 3)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured(f"DATABASE_URL: unsupported scheme {parsed.scheme!r}; use postgres://")
    name = parsed.path.lstrip("/")
    if not name:
        raise ImproperlyConfigured("DATABASE_URL: the database name is missing (postgres://user@host:5432/NAME)")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(name),
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": parsed.hostname or "",
        "PORT": str(parsed.port or ""),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }


def persistent_secret(path: Path) -> str:
    """The key stored at ``path``, created once (mode 600) so that sessions survive restarts.

    Created with O_EXCL: of several processes starting at once, one writes and the others
    read what it wrote.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as error:
        raise ImproperlyConfigured(f"SECRET_KEY is not set and {path} cannot be created ({error.strerror}); "
                                   "set SECRET_KEY or SECRET_KEY_FILE") from None
    else:
        with os.fdopen(descriptor, "w") as sink:
            sink.write(secrets.token_urlsafe(50))
    for _ in range(50):
        try:
            key = path.read_text().strip()
        except OSError as error:
            raise ImproperlyConfigured(f"SECRET_KEY is not set and {path} cannot be read ({error.strerror}); "
                                       "set SECRET_KEY or SECRET_KEY_FILE") from None
        if key:
            return key
        time.sleep(0.02)  # another process created the file and is writing it
    raise ImproperlyConfigured(f"{path} is empty; delete it to generate a new key, or set SECRET_KEY")


def redis_cache_url(broker_url: str) -> str:
    """The broker's Redis as Django's cache sees it: kombu's ``redis+socket://PATH`` is redis-py's ``unix://PATH``."""
    if broker_url.startswith("redis+socket://"):
        return "unix://" + broker_url[len("redis+socket://"):]
    return broker_url
