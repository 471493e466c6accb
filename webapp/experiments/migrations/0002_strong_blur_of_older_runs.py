"""Experiments stored before the run setting ``strong_blur`` existed were trained with the
blur in absolute pixels; record that, so that a resumed or cloned run is the same run.

The value is written out here, not read from ``engine.config.SAVED_BEFORE_FIELD``: a
migration must do the same thing whenever it runs.
"""
from django.db import migrations


def record_pixel_blur(apps, schema_editor):
    Experiment = apps.get_model("experiments", "Experiment")
    older = Experiment.objects.exclude(config__has_key="strong_blur")
    for experiment in older.iterator():
        experiment.config = {**experiment.config, "strong_blur": "pixels"}
        experiment.save(update_fields=["config"])


class Migration(migrations.Migration):
    dependencies = [("experiments", "0001_initial")]
    operations = [migrations.RunPython(record_pixel_blur, migrations.RunPython.noop)]
