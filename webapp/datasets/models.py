from pathlib import Path

from django.conf import settings
from django.db import models

from webapp.teams.models import Team

#: Free text is shown in every list and API response: a few paragraphs, not a file.
MAX_DESCRIPTION_LENGTH = 2000


class Dataset(models.Model):
    """A validated dataset on disk; a row exists only once everything checked out."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=MAX_DESCRIPTION_LENGTH)
    storage_path = models.CharField(max_length=500, help_text="Folder relative to MEDIA_ROOT")
    classes = models.JSONField(default=list, help_text="[{index, name, color, pixel_share}]")
    num_images = models.PositiveIntegerField(default=0)
    num_labeled = models.PositiveIntegerField(default=0)
    num_unlabeled = models.PositiveIntegerField(default=0)
    info = models.JSONField(default=dict, help_text="The engine's full description (sizes, splits, layout)")
    size_bytes = models.BigIntegerField(null=True, blank=True,
                                        help_text="Bytes on disk (folder, preview, samples), measured at upload")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="dataset_name_unique_in_team")]

    def __str__(self) -> str:
        return self.name

    @property
    def path(self) -> Path:
        return Path(settings.MEDIA_ROOT) / self.storage_path

    @property
    def preview_url(self) -> str:
        return f"{settings.MEDIA_URL}{self.storage_path}.preview.png"

    @property
    def samples_url(self) -> str:
        """Where the sample pictures of ``engine.data.preview.write_samples`` are served from."""
        return f"{settings.MEDIA_URL}{self.storage_path}.samples/"

    @property
    def num_classes(self) -> int:
        return len(self.classes)
