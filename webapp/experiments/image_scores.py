"""Per-image scores of one evaluation: the hardest images first, or those where one confusion is largest.

Plain queries over ``ImageScore`` rows for the API and the experiment page. The
confusion filter reads the JSON key ``"true,predicted"`` of each row of the evaluation
(the engine keeps each image's largest confusions only, so an image is listed when the
confusion is among its biggest mistakes; see ``engine.metrics.image_scores``).
"""
from django.db.models import BigIntegerField, F, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from webapp.experiments.models import Evaluation, confusion_key

#: ``ordering`` values and what they order by; null scores (every pixel ignored) come last.
ORDERINGS = {
    "miou": (F("miou").asc(nulls_last=True), "image_id"),
    "-miou": (F("miou").desc(nulls_last=True), "image_id"),
    "pixel_accuracy": (F("pixel_accuracy").asc(nulls_last=True), "image_id"),
    "-pixel_accuracy": (F("pixel_accuracy").desc(nulls_last=True), "image_id"),
    "image_id": ("image_id",),
}
DEFAULT_ORDERING = "miou"  # hardest first


def ordered_scores(evaluation: Evaluation, ordering: str = DEFAULT_ORDERING) -> QuerySet:
    return evaluation.image_scores.order_by(*ORDERINGS[ordering])


def images_confusing(evaluation: Evaluation, true_class: int, predicted_class: int) -> QuerySet:
    """The images with pixels of ``true_class`` predicted as ``predicted_class``, most such pixels first;
    each row carries them as ``confusion_pixels``."""
    key = confusion_key(true_class, predicted_class)
    return (evaluation.image_scores.filter(confusions__has_key=key)
            .annotate(confusion_pixels=Cast(KT(f"confusions__{key}"), BigIntegerField()))
            .order_by("-confusion_pixels", F("miou").asc(nulls_last=True), "image_id"))


def stored_samples(evaluation: Evaluation) -> dict[str, dict]:
    """Image id -> its stored PNGs at this evaluation (runs before mask samples: ``overlay`` only)."""
    return {sample["id"]: sample for sample in evaluation.predictions}


def stored_images(experiment_id: int) -> dict[str, str]:
    """Image id -> its image PNG, for every image sampled at any evaluation of the run (written once)."""
    images = {}
    for predictions in Evaluation.objects.filter(experiment_id=experiment_id).values_list("predictions", flat=True):
        images.update({sample["id"]: sample["image"] for sample in predictions if "image" in sample})
    return images
