"""The engine's reporter over the database: the only way a run's results reach the pages.

Metric points never make the training loop wait on the database: ``log_metrics`` adds
them to a batch that a writer thread upserts on (experiment, name, step)
(``workers.metric_writer``), so a redelivered or resumed run never duplicates a point and
a crash loses at most the last second of curves (steps that the resumed run trains and
logs again from its checkpoint). Evaluations flush first, so a page never shows an
evaluation without the losses before it.

``should_stop`` answers the cancel flag, the worker's shutdown, and fencing: once the row
no longer belongs to this attempt (re-queued by the reconciler, deleted), the run stops.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from PIL import Image

from engine.reporting import EvaluationResult, ImageScore, PredictionSample
from engine.visualize import grey_index_png
from webapp.experiments.models import Evaluation, Experiment, confusion_key
from webapp.experiments.models import ImageScore as ImageScoreRow
from workers.metric_writer import MetricWriter

CANCEL_POLL_SECONDS = 1.0
#: Rows per INSERT when storing an evaluation's per-image scores.
SCORE_BATCH = 1000
#: Weight of the newest measurement in the steps/s estimate behind the page's ETA.
RATE_SMOOTHING = 0.3


class DatabaseReporter:
    def __init__(self, experiment: Experiment, attempt: int | None = None,
                 interrupted: Callable[[], bool] = lambda: False, background: bool = True):
        self.experiment = experiment
        self.attempt = attempt
        self.interrupted = interrupted
        self.colors = [c["color"] for c in experiment.dataset.classes]
        self.step = experiment.current_step
        self.last_poll = 0.0
        self.stop = False
        self.rate_step, self.rate_time, self.rate = self.step, time.monotonic(), None
        self.writer = MetricWriter(experiment.pk, self._record_progress, background=background)

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.step = step
        self.writer.log(step, metrics)

    def flush(self) -> None:
        """Return once every point logged so far is stored."""
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def flush_quietly(self) -> None:
        """Keep what can be kept when the run is failing; the failure itself is what gets reported."""
        try:
            self.writer.close()
        except Exception:  # the database may be what failed
            pass

    def _record_progress(self, step: int) -> None:
        """In the writer's transaction, after each batch: the page's step counter and ETA."""
        changes = {"current_step": Greatest(F("current_step"), step)}
        rate = self._measure_rate(step)
        if rate is not None:
            changes["steps_per_second"] = rate
        Experiment.objects.filter(pk=self.experiment.pk).update(**changes)

    def _measure_rate(self, step: int) -> float | None:
        now = time.monotonic()
        if step <= self.rate_step or now <= self.rate_time:
            return self.rate
        measured = (step - self.rate_step) / (now - self.rate_time)
        self.rate = measured if self.rate is None else RATE_SMOOTHING * measured + (1 - RATE_SMOOTHING) * self.rate
        self.rate_step, self.rate_time = step, now
        return self.rate

    def log_evaluation(self, step: int, result: EvaluationResult) -> None:
        """The evaluation and its per-image scores in one transaction; a redelivered or resumed run
        that evaluates the same step again replaces both, so nothing is duplicated or half-stored."""
        self.log_metrics(step, {"val_miou": result.miou, "val_pixel_accuracy": result.pixel_accuracy})
        self.flush()
        with transaction.atomic():
            evaluation, _ = Evaluation.objects.update_or_create(
                experiment=self.experiment, step=step,
                defaults={
                    "miou": result.miou, "iou": result.iou, "pixel_accuracy": result.pixel_accuracy,
                    "mean_accuracy": result.mean_accuracy, "confusion_matrix": result.confusion_matrix,
                    "class_names": result.class_names, "throughput": result.throughput,
                },
            )
            evaluation.image_scores.all().delete()
            ImageScoreRow.objects.bulk_create([_score_row(evaluation, score) for score in result.images],
                                              batch_size=SCORE_BATCH)
        best = max(result.miou, self.experiment.best_miou or 0.0)
        self.experiment.best_miou = best
        Experiment.objects.filter(pk=self.experiment.pk).update(best_miou=best)

    def log_predictions(self, step: int, samples: list[PredictionSample]) -> None:
        """Each sample's prediction as a grey index PNG per step; its image and ground truth once per
        run (they do not change between steps). The page colours the masks in the browser."""
        root = self.experiment.output_dir / "predictions"
        written = save_samples(samples, root / "images", root / "truth", root / f"step_{step:07d}")
        Evaluation.objects.filter(experiment=self.experiment, step=step).update(predictions=written)

    def log_checkpoint(self, path: str, step: int, is_best: bool) -> None:
        if not is_best:
            relative = str(Path(path).relative_to(settings.MEDIA_ROOT))
            Experiment.objects.filter(pk=self.experiment.pk).update(checkpoint=relative)

    def should_stop(self) -> bool:
        if self.interrupted():
            return True
        now = time.monotonic()
        if not self.stop and now - self.last_poll >= CANCEL_POLL_SECONDS:
            self.last_poll = now
            row = (Experiment.objects.filter(pk=self.experiment.pk)
                   .values("status", "attempt", "cancel_requested").first())
            self.stop = (row is None or row["cancel_requested"] or row["status"] != Experiment.Status.RUNNING
                         or (self.attempt is not None and row["attempt"] != self.attempt))
        return self.stop


def _score_row(evaluation: Evaluation, score: ImageScore) -> ImageScoreRow:
    return ImageScoreRow(evaluation=evaluation, image_id=score.id, miou=score.miou, pixel_accuracy=score.pixel_accuracy,
                         pixels=score.pixels,
                         confusions={confusion_key(true, predicted): pixels
                                     for true, predicted, pixels in score.confusions})


def save_samples(samples: list[PredictionSample], images: Path, truth: Path, predictions: Path) -> list[dict]:
    """Each sample's image, ground truth (both kept when already written: they do not change)
    and prediction as PNGs, the masks as grey index PNGs; ``[{id, image, ground_truth,
    prediction}]`` with paths relative to MEDIA_ROOT, as ``Evaluation.predictions`` lists them."""
    for folder in (images, truth, predictions):
        folder.mkdir(parents=True, exist_ok=True)
    written = []
    for sample in samples:
        name = f"{sample.id}.png"
        paths = {"image": images / name, "ground_truth": truth / name, "prediction": predictions / name}
        if not paths["image"].is_file():
            save_png(Image.fromarray(sample.image.permute(1, 2, 0).cpu().numpy()), paths["image"])
        if not paths["ground_truth"].is_file():
            save_png(grey_index_png(sample.ground_truth), paths["ground_truth"])
        save_png(grey_index_png(sample.prediction), paths["prediction"])
        written.append({"id": sample.id, **{kind: str(path.relative_to(settings.MEDIA_ROOT))
                                            for kind, path in paths.items()}})
    return written


def save_png(image: Image.Image, path: Path) -> None:
    """Write through a temporary name: a page never reads a half-written PNG."""
    temporary = path.with_name(f".{path.name}.tmp")
    image.save(temporary, format="PNG")
    temporary.replace(path)
