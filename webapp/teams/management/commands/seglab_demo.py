"""Create the demo team, user and dataset that `make run` shows a newcomer (idempotent)."""
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from engine.data.builtin.demo import generate_demo
from webapp.datasets.ingest import ingest_folder
from webapp.datasets.models import Dataset
from webapp.teams.models import Membership, Team

DEMO_DATASET = "demo shapes"


class Command(BaseCommand):
    help = "Create a demo team, a demo user (printed) and a small demo dataset."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo")

    def handle(self, *args, username, password, **options):
        team, _ = Team.objects.get_or_create(name="Demo team")
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_password(password)
            user.save()
        Membership.objects.get_or_create(team=team, user=user, defaults={"role": Membership.Role.OWNER})
        if not Dataset.objects.filter(team=team, name=DEMO_DATASET).exists():
            staging = Path(settings.MEDIA_ROOT) / "datasets"
            staging.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix=".demo-", dir=staging))
            try:
                generate_demo(folder / "data")
                ingest_folder(team, DEMO_DATASET, folder / "data", user,
                              "Procedural shapes on textured backgrounds (160 labelled + 40 unlabelled, 64x64).")
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        state = "created" if created else "exists (password unchanged)"
        self.stdout.write(self.style.SUCCESS(f"Demo login: username {username!r}, password {password!r} "
                                             f"— user {state}"))
