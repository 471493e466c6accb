"""Deleting a finished run: its row (metrics, evaluations, events go with it), then its files."""
from __future__ import annotations

import shutil

from django.db import transaction

from webapp.experiments.models import Experiment


class ExperimentInUse(ValueError):
    """A queued or running run is cancelled first, so no worker writes into what is deleted."""


def delete_experiment(experiment: Experiment) -> None:
    folder = experiment.output_dir
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if not locked.is_finished:
            raise ExperimentInUse(f"the run is {locked.status}; cancel it first")
        locked.delete()
        transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))
