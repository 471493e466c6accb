"""Data migrations: experiments stored by an older SegLab keep meaning the run they were."""
import importlib

from django.apps import apps

from tests.conftest import TINY_RUN
from webapp.experiments.models import Experiment

blur_migration = importlib.import_module("webapp.experiments.migrations.0002_strong_blur_of_older_runs")


def test_experiments_stored_before_strong_blur_are_recorded_with_the_pixel_blur(dataset):
    older = Experiment.objects.create(team=dataset.team, dataset=dataset, name="older", config=dict(TINY_RUN))
    newer = Experiment.objects.create(team=dataset.team, dataset=dataset, name="newer",
                                      config={**TINY_RUN, "strong_blur": "crop"})

    blur_migration.record_pixel_blur(apps, schema_editor=None)

    older.refresh_from_db()
    newer.refresh_from_db()
    assert older.config == {**TINY_RUN, "strong_blur": "pixels"}
    assert newer.config["strong_blur"] == "crop"
