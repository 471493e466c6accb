from pathlib import Path

from django.conf import settings
from django.db import migrations, models


def measure_older_datasets(apps, schema_editor):
    """Datasets uploaded before sizes were stored are measured once, here; a missing folder stays unknown."""
    from webapp.datasets.ingest import disk_usage

    Dataset = apps.get_model("datasets", "Dataset")
    for dataset in Dataset.objects.filter(size_bytes__isnull=True).only("pk", "storage_path"):
        folder = Path(settings.MEDIA_ROOT) / dataset.storage_path
        if folder.is_dir():
            Dataset.objects.filter(pk=dataset.pk).update(size_bytes=disk_usage(folder))


class Migration(migrations.Migration):

    dependencies = [
        ("datasets", "0002_description_limit"),
    ]

    operations = [
        migrations.AddField(
            model_name="dataset",
            name="size_bytes",
            field=models.BigIntegerField(blank=True, help_text="Bytes on disk (folder, preview, samples), measured at upload", null=True),
        ),
        migrations.RunPython(measure_older_datasets, migrations.RunPython.noop),
    ]
