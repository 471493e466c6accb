import time

from django.conf import settings
from django.core.management.base import BaseCommand

from webapp.experiments.reconcile import reconcile


class Command(BaseCommand):
    help = ("Re-queue runs whose worker stopped sending heartbeats and re-announce queued runs whose broker "
            "message is gone, every SEGLAB_RECONCILE_SECONDS (docs/jobs.md).")

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one pass, then exit")

    def handle(self, *args, once=False, **options):
        while True:
            done = reconcile()
            if done["requeued"] or done["announced"] or done["failed_evaluations"]:
                self.stdout.write(f"re-queued {done['requeued']}, announced {done['announced']}, "
                                  f"failed stale evaluations {done['failed_evaluations']}")
            if once:
                return
            time.sleep(settings.SEGLAB_RECONCILE_SECONDS)
