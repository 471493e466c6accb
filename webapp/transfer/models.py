"""A finished run's best checkpoint evaluated on another dataset of its team (docs/jobs.md,
"Cross-dataset evaluations"). ``status`` changes only in ``webapp.transfer.lifecycle``."""
from pathlib import Path

from django.conf import settings
from django.db import models

from webapp.datasets.models import Dataset
from webapp.experiments.models import Experiment


class TransferEvaluation(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="transfer_evaluations",
                                   help_text="The run whose best checkpoint is evaluated")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="transfer_evaluations",
                                help_text="The other dataset it is evaluated on")
    queue = models.CharField(max_length=20, help_text="The run's queue: the evaluation needs the same kind of worker")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    attempt = models.PositiveIntegerField(default=0, help_text="How many times a worker started it (a fencing token)")
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    step = models.PositiveIntegerField(null=True, blank=True, help_text="Training step of the evaluated checkpoint")
    num_images = models.PositiveIntegerField(null=True, blank=True, help_text="Labelled images scored")
    miou = models.FloatField(null=True, blank=True)
    iou = models.JSONField(default=list, blank=True,
                           help_text="Per-class IoU on the other dataset, null for absent classes")
    pixel_accuracy = models.FloatField(null=True, blank=True)
    confusion_matrix = models.JSONField(default=list, blank=True, help_text="Rows: ground truth, columns: prediction")
    class_names = models.JSONField(default=list, blank=True)
    in_domain_miou = models.FloatField(null=True, blank=True, help_text="The run's own best validation mIoU")
    in_domain_iou = models.JSONField(default=list, blank=True, help_text="The run's own per-class IoU at that step")
    predictions = models.JSONField(default=list, blank=True,
                                   help_text="[{id, image, ground_truth, prediction}] PNGs relative to MEDIA_ROOT "
                                             "(masks: grey index PNGs)")
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    requested_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]
        indexes = [models.Index(fields=["queue", "status", "requested_at"], name="transfer_queue_order")]

    def __str__(self) -> str:
        return f"{self.experiment} on {self.dataset}"

    @property
    def team(self):
        return self.experiment.team

    @property
    def output_dir(self) -> Path:
        """Its prediction samples, beside the run's own files (deleted with them)."""
        return self.experiment.output_dir / "transfer" / str(self.pk)
