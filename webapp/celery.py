"""The Celery app. Tasks live in workers/; the web side sends them by name only."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("seglab", include=["workers.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")
