from pathlib import Path

from django.conf import settings
from django.db import models

from webapp.datasets.models import Dataset
from webapp.teams.models import Team


class Experiment(models.Model):
    """One training run: architecture x method x label budget x seed on one dataset.

    ``status`` changes only through ``webapp.experiments.lifecycle``; the fields below it
    are what the worker reports while the run trains.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="experiments")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="experiments")
    sweep = models.ForeignKey("sweeps.Sweep", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="experiments", help_text="The sweep that launched the run, if any")
    name = models.CharField(max_length=200)
    config = models.JSONField(help_text="The engine's flat run configuration, validated (without the data path)")
    queue = models.CharField(max_length=20, default="gpu")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    position = models.BigIntegerField(default=0, help_text="Order in the queue: workers take the lowest first")
    cancel_requested = models.BooleanField(default=False)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=0, help_text="How many times a worker started the run")
    crashes = models.PositiveIntegerField(default=0, help_text="How many times the run's process died")
    current_step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    steps_per_second = models.FloatField(null=True, blank=True)
    best_miou = models.FloatField(null=True, blank=True)
    final_miou = models.FloatField(null=True, blank=True)
    throughput = models.FloatField(null=True, blank=True, help_text="Inference images/s at the end of the run")
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    log_tail = models.TextField(blank=True, help_text="The last lines the run's process printed")
    worker = models.CharField(max_length=200, blank=True)
    device_name = models.CharField(max_length=200, blank=True, help_text="GPU (or CPU) the run trains on")
    device_memory_mb = models.PositiveIntegerField(null=True, blank=True)
    process_id = models.PositiveIntegerField(null=True, blank=True,
                                             help_text="The run's training process on its worker")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    checkpoint = models.CharField(max_length=500, blank=True, help_text="Relative to MEDIA_ROOT")
    environment = models.JSONField(
        default=dict, blank=True, help_text="What reproduces the run: SegLab commit, torch, device, labelled image ids")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["queue", "status", "position"], name="experiment_queue_order")]

    def __str__(self) -> str:
        return self.name

    @property
    def progress(self) -> float:
        return self.current_step / self.total_steps if self.total_steps else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if self.status != self.Status.RUNNING or not self.steps_per_second:
            return None
        return max(0, self.total_steps - self.current_step) / self.steps_per_second

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def output_dir(self) -> Path:
        return Path(settings.MEDIA_ROOT) / "experiments" / str(self.pk)


class MetricPoint(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="metric_points")
    name = models.CharField(max_length=100)
    step = models.PositiveIntegerField()
    value = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "name", "step"], name="one_point_per_step")]
        # The unique constraint's index serves lookups; this one carries the value too, so a
        # downsampled series (webapp/experiments/series.py) is read from the index alone.
        indexes = [models.Index(fields=["experiment", "name", "step"], include=["value"],
                                name="metric_series_covering")]


class MetricSummary(models.Model):
    """The lowest and highest point of each block of ``BLOCK_STEPS`` steps of a metric, kept by
    the metric writer with every batch, so a downsampled view of a long run reads blocks,
    not every point (``webapp/experiments/series.py``)."""

    BLOCK_STEPS = 128

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="metric_summaries")
    name = models.CharField(max_length=100)
    block = models.PositiveIntegerField()
    low_value = models.FloatField()
    low_step = models.PositiveIntegerField()
    high_value = models.FloatField()
    high_step = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "name", "block"], name="one_summary_per_block")]


class Evaluation(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="evaluations")
    step = models.PositiveIntegerField()
    miou = models.FloatField()
    iou = models.JSONField(help_text="Per-class IoU, null for classes absent from truth and prediction")
    pixel_accuracy = models.FloatField()
    mean_accuracy = models.FloatField()
    confusion_matrix = models.JSONField(help_text="Rows: ground truth, columns: prediction")
    class_names = models.JSONField(default=list)
    throughput = models.FloatField(null=True, blank=True)
    predictions = models.JSONField(default=list,
                                   help_text="[{id, image, ground_truth, prediction}] PNGs relative to "
                                             "MEDIA_ROOT (masks: grey index PNGs); older runs [{id, overlay}]")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["step"]
        constraints = [models.UniqueConstraint(fields=["experiment", "step"], name="one_evaluation_per_step")]


def confusion_key(true_class: int, predicted_class: int) -> str:
    """The key of one confusion in ``ImageScore.confusions``."""
    return f"{true_class},{predicted_class}"


class ImageScore(models.Model):
    """One validation image's own scores at one evaluation (``engine.metrics.image_scores``).

    ``confusions`` maps ``"true,predicted"`` to pixels for the image's largest confusions
    (bounded by the engine), so "the images that lose most of class i to class j" is a key
    lookup and an order on its value within one evaluation's rows, on PostgreSQL and SQLite
    alike; the index on (evaluation, miou) serves the hardest-first grid.
    """

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="image_scores")
    image_id = models.CharField(max_length=500)
    miou = models.FloatField(null=True, help_text="Over the classes in the image's truth or prediction; "
                                                  "null when every pixel is ignored")
    pixel_accuracy = models.FloatField(null=True)
    pixels = models.PositiveBigIntegerField(help_text="Pixels scored (not ignored)")
    confusions = models.JSONField(default=dict, help_text='{"true,predicted": pixels} for the largest confusions')

    class Meta:
        constraints = [models.UniqueConstraint(fields=["evaluation", "image_id"], name="one_score_per_image")]
        indexes = [models.Index(fields=["evaluation", "miou"], name="image_score_hardest_first")]


class ExperimentEvent(models.Model):
    """What happened to a run, one row per lifecycle transition, shown on its page."""

    class Kind(models.TextChoices):
        QUEUED = "queued", "Queued"
        STARTED = "started", "Started"
        CANCEL_REQUESTED = "cancel-requested", "Cancel requested"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        INTERRUPTED = "interrupted", "Interrupted"
        REQUEUED = "requeued", "Re-queued"
        RETRIED = "retried", "Retried"
        MOVED = "moved", "Moved in the queue"

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
