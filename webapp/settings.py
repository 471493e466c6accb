"""SegLab settings: environment variables only (12-factor); safe defaults.

DATABASE_URL    postgres://user:pass@host:5432/name (default: SQLite in ./var)
REDIS_URL       broker URL (default: the Redis that `make run` starts on a socket in ./var)
SECRET_KEY      default: a key generated once into SECRET_KEY_FILE (mode 600) and reused
SECRET_KEY_FILE where that key lives (default ./var/secret_key)
DEBUG           true/false (default false: Django's debug page shows settings and tracebacks)
SEGLAB_HTTPS    true behind a TLS proxy: secure cookies, HSTS, redirect to https (default false)
MEDIA_ROOT      uploaded datasets, checkpoints, overlays (default ./var/media)
ALLOWED_HOSTS   comma-separated (default localhost, 127.0.0.1)
LOGIN_FAILURE_LIMIT, LOGIN_COOLOFF_MINUTES   login lockout (default 5 failures, 15 minutes)
"""
from datetime import timedelta
from pathlib import Path

from engine import host_memory
from webapp.env import (
    database_from_url,
    envbool,
    envfloat,
    envint,
    envlist,
    envsetting,
    envstr,
    persistent_secret,
    redis_cache_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

DEBUG = envbool("DEBUG", False)
SECRET_KEY = envstr("SECRET_KEY", "") or persistent_secret(Path(envstr("SECRET_KEY_FILE", str(VAR_DIR / "secret_key"))))
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

# Behind a TLS-terminating proxy (the production stack): cookies only over https, HSTS,
# and plain-http requests redirected. /healthz/ stays reachable over http for probes.
SEGLAB_HTTPS = envbool("SEGLAB_HTTPS", False)
if SEGLAB_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", True)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "webapp.accounts",
    "webapp.teams",
    "webapp.datasets",
    "webapp.experiments",
    "webapp.sweeps",
    "webapp.review",
    "webapp.transfer",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]
# Static files (plotly.js included) are served by WhiteNoise with debug on or off; without
# `collectstatic` (make run, tests) it reads them through the finders.
MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")
WHITENOISE_USE_FINDERS = True

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "frontend" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if envstr("DATABASE_URL", ""):
    DATABASES = {"default": database_from_url(envstr("DATABASE_URL", ""))}
else:
    VAR_DIR.mkdir(exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "seglab.sqlite3",
            # WAL lets the pages read while the worker writes; IMMEDIATE transactions and
            # a busy timeout make writers queue instead of failing with "database is locked".
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes: after LOGIN_FAILURE_LIMIT wrong passwords for one username from one address,
# that pair is refused (HTTP 429, a page saying when to try again) for the cool-off time,
# on the site's login and the admin's alike; a success clears the count.
AUTHENTICATION_BACKENDS = ["webapp.lockout.LockoutBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "webapp.lockout.lockout_response"
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "experiments:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves what `collectstatic` put here (the image does it) and warns when the
# folder is missing; without it (make run, tests) the finders serve the same files.
try:
    STATIC_ROOT.mkdir(exist_ok=True)
except OSError:
    pass
STATICFILES_DIRS = [BASE_DIR / "frontend" / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "webapp.staticfinders.PlotlyFinder",
]
MEDIA_ROOT = Path(envstr("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "media/"
# Uploads bigger than this go to a temporary file, never into memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
SEGLAB_MAX_UPLOAD_BYTES = envint("SEGLAB_MAX_UPLOAD_BYTES", 4 * 1024**3)

REDIS_URL = envstr("REDIS_URL", f"redis+socket://{VAR_DIR / 'redis.sock'}")
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True  # experiment state lives in the database
CELERY_TASK_ACKS_LATE = True  # a worker that dies mid-run leaves the task to be redelivered
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "gpu"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# The job backend (docs/jobs.md). A worker writes a heartbeat on its run's row every
# SEGLAB_HEARTBEAT_SECONDS; the reconciler re-queues a run whose heartbeat is older than
# SEGLAB_HEARTBEAT_TIMEOUT (its worker died), every SEGLAB_RECONCILE_SECONDS. A run whose
# process dies is retried from its checkpoint at most SEGLAB_MAX_RESTARTS times; a run that
# ignores a cancel for SEGLAB_CANCEL_GRACE_SECONDS is killed.
SEGLAB_HEARTBEAT_SECONDS = envfloat("SEGLAB_HEARTBEAT_SECONDS", 5.0)
SEGLAB_HEARTBEAT_TIMEOUT = envfloat("SEGLAB_HEARTBEAT_TIMEOUT", 30.0)
SEGLAB_RECONCILE_SECONDS = envfloat("SEGLAB_RECONCILE_SECONDS", 10.0)
SEGLAB_MAX_RESTARTS = envint("SEGLAB_MAX_RESTARTS", 3)
SEGLAB_CANCEL_GRACE_SECONDS = envfloat("SEGLAB_CANCEL_GRACE_SECONDS", 30.0)
SEGLAB_SYSTEM_METRICS_SECONDS = envfloat("SEGLAB_SYSTEM_METRICS_SECONDS", 10.0)
# Read by each run's own process (engine/host_memory.py); checked here so that a worker with
# a malformed value refuses to start instead of failing every run it takes.
SEGLAB_HOST_MEMORY = envsetting(host_memory.setting)


def _resize_gradient() -> str:
    from engine.models import resize  # torch, which the apps import anyway; a malformed value stops the import

    return resize.setting()


SEGLAB_RESIZE_GRADIENT = envsetting(_resize_gradient)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["webapp.accounts.authentication.TokenAuthentication",
                                       "rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["webapp.api.parsers.BoundedJSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "EXCEPTION_HANDLER": "webapp.api.errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "webapp.api.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": ["webapp.api.throttling.UserRateThrottle", "webapp.api.throttling.AnonRateThrottle"],
    # A live page polls about twice a second; a script polling a sweep far less.
    "DEFAULT_THROTTLE_RATES": {"user": envstr("API_USER_RATE", "3000/min"), "anon": envstr("API_ANON_RATE", "60/min")},
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SegLab API",
    "DESCRIPTION": "Datasets, experiments, their metrics and evaluations. "
                   "Authenticate with `Authorization: Token <key>` (tokens are made on the account page) "
                   "or a browser session. Errors are "
                   "`{\"error\": \"...\", \"fields\": {\"name\": \"message\"}}`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "webapp.api.schema.add_error_responses"],
    "ENUM_NAME_OVERRIDES": {"ExperimentStatusEnum": "webapp.experiments.models.Experiment.Status"},
}
# One cache for every process (throttling counts a user's calls across gunicorn workers).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_cache_url(REDIS_URL),
                      "KEY_PREFIX": "seglab"}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
}
