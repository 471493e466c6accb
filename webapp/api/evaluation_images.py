"""Per-image scores and prediction samples of one evaluation step, as actions of the experiments API.

``/api/v1/experiments/{id}/evaluations/{step}/images/`` lists every validation image's own
scores (hardest first by default, paginated), or with ``true_class`` and ``predicted_class``
the images where that confusion is largest; ``.../predictions/`` lists the stored samples
with the URLs of their image, ground truth and prediction PNGs (masks are grey index PNGs:
each pixel's value, in every channel, is its class; 255 is ignored).
"""
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from webapp.api.params import whole_number
from webapp.experiments.image_scores import (
    DEFAULT_ORDERING,
    ORDERINGS,
    images_confusing,
    ordered_scores,
    stored_images,
    stored_samples,
)
from webapp.experiments.models import Evaluation

#: Steps are stored as 32-bit integers.
MAX_STEP = 2**31 - 1
STEP_PATH = r"evaluations/(?P<step>[0-9]+)"
STEP_PARAMETER = OpenApiParameter("step", int, OpenApiParameter.PATH, description="The evaluation's training step")


class ConfusionSerializer(serializers.Serializer):
    true_class = serializers.IntegerField()
    predicted_class = serializers.IntegerField()
    pixels = serializers.IntegerField()


class ImageScoreSerializer(serializers.Serializer):
    image_id = serializers.CharField()
    miou = serializers.FloatField(allow_null=True, help_text="Over the classes in this image's truth or prediction; "
                                                             "null when every pixel is ignored")
    pixel_accuracy = serializers.FloatField(allow_null=True)
    pixels = serializers.IntegerField(help_text="Pixels scored (not ignored)")
    confusions = serializers.SerializerMethodField(help_text="The image's largest confusions, largest first")
    confusion_pixels = serializers.IntegerField(
        allow_null=True, default=None, help_text="With true_class and predicted_class: that confusion's pixels")
    image_url = serializers.SerializerMethodField(help_text="The image's PNG when it was among a step's samples")
    has_prediction = serializers.SerializerMethodField(help_text="Whether its prediction is stored at this step "
                                                                 "(see the predictions endpoint)")

    @extend_schema_field(ConfusionSerializer(many=True))
    def get_confusions(self, score):
        entries = [(*map(int, key.split(",")), pixels) for key, pixels in score.confusions.items()]
        return ConfusionSerializer([{"true_class": t, "predicted_class": p, "pixels": n}
                                    for t, p, n in sorted(entries, key=lambda e: (-e[2], e[0], e[1]))], many=True).data

    def get_image_url(self, score) -> str | None:
        path = self.context["images"].get(score.image_id)
        return media_url(self.context["request"], path) if path else None

    def get_has_prediction(self, score) -> bool:
        return "prediction" in self.context["samples"].get(score.image_id, {})


class ImageScorePageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ImageScoreSerializer(many=True)


class PredictionSampleSerializer(serializers.Serializer):
    id = serializers.CharField()
    image_url = serializers.URLField(allow_null=True)
    ground_truth_url = serializers.URLField(allow_null=True,
                                            help_text="Grey index PNG: pixel value = class, 255 ignored")
    prediction_url = serializers.URLField(allow_null=True, help_text="Grey index PNG: pixel value = class")
    overlay_url = serializers.URLField(allow_null=True, help_text="Runs from before mask samples: a baked "
                                                                  "image | truth | prediction strip")


class PredictionSamplesSerializer(serializers.Serializer):
    step = serializers.IntegerField()
    class_names = serializers.ListField(child=serializers.CharField())
    samples = PredictionSampleSerializer(many=True, help_text="The first validation images, then the step's hardest")


def media_url(request, path: str) -> str:
    return request.build_absolute_uri(reverse("media", kwargs={"path": path}))


def sample_urls(request, sample: dict) -> dict:
    def url(kind):
        return media_url(request, sample[kind]) if sample.get(kind) else None

    return {"id": sample["id"], "image_url": url("image"), "ground_truth_url": url("ground_truth"),
            "prediction_url": url("prediction"), "overlay_url": url("overlay")}


def _class_param(request, name: str, num_classes: int) -> int | None:
    return whole_number(request, name, None, 0, max(num_classes - 1, 0))


class EvaluationImagesMixin:
    """For ExperimentViewSet: ``get_object`` is its team-scoped lookup (another team's run is a 404)."""

    def _evaluation(self, step: str) -> Evaluation:
        experiment = self.get_object()
        if len(step) > len(str(MAX_STEP)) or int(step) > MAX_STEP:
            raise ValidationError({"step": f"expected a whole number from 0 to {MAX_STEP}, got {step[:40]!r}"})
        evaluation = experiment.evaluations.filter(step=int(step)).first()
        if evaluation is None:
            raise NotFound(f"this run has no evaluation at step {int(step)}")
        return evaluation

    @extend_schema(responses=ImageScorePageSerializer, parameters=[
        STEP_PARAMETER,
        OpenApiParameter("ordering", str, enum=list(ORDERINGS),
                         description=f"Order of the images (default {DEFAULT_ORDERING}: hardest first); "
                                     "ignored with a confusion"),
        OpenApiParameter("true_class", int, description="With predicted_class: only images with pixels of this "
                                                        "true class predicted as that one, most such pixels first"),
        OpenApiParameter("predicted_class", int, description="See true_class"),
        OpenApiParameter("limit", int, description="Images per page (at most 500, default 50)"),
        OpenApiParameter("offset", int, description="Images to skip")])
    @action(detail=True, methods=["get"], url_path=f"{STEP_PATH}/images", url_name="evaluation-images")
    def evaluation_images(self, request, pk=None, step=None):
        """Every validation image's own scores at this step, paginated."""
        evaluation = self._evaluation(step)
        num_classes = len(evaluation.class_names)
        true_class = _class_param(request, "true_class", num_classes)
        predicted_class = _class_param(request, "predicted_class", num_classes)
        ordering = request.query_params.get("ordering", DEFAULT_ORDERING)
        if ordering not in ORDERINGS:
            raise ValidationError({"ordering": f"expected one of {', '.join(ORDERINGS)}, got {ordering[:40]!r}"})
        if (true_class is None) != (predicted_class is None):
            missing = "predicted_class" if predicted_class is None else "true_class"
            raise ValidationError({missing: "true_class and predicted_class go together; give both"})
        if true_class is not None and true_class == predicted_class:
            raise ValidationError({"predicted_class": "must differ from true_class: a confusion is a mistake"})
        scores = (ordered_scores(evaluation, ordering) if true_class is None
                  else images_confusing(evaluation, true_class, predicted_class))
        page = self.paginate_queryset(scores)
        context = {"request": request, "samples": stored_samples(evaluation),
                   "images": stored_images(evaluation.experiment_id)}
        return self.get_paginated_response(ImageScoreSerializer(page, many=True, context=context).data)

    @extend_schema(responses=PredictionSamplesSerializer, parameters=[STEP_PARAMETER])
    @action(detail=True, methods=["get"], url_path=f"{STEP_PATH}/predictions", url_name="evaluation-predictions")
    def evaluation_predictions(self, request, pk=None, step=None):
        """The prediction samples stored at this step, with their PNGs' URLs."""
        evaluation = self._evaluation(step)
        samples = [sample_urls(request, sample) for sample in evaluation.predictions]
        return Response(PredictionSamplesSerializer({"step": evaluation.step, "class_names": evaluation.class_names,
                                                     "samples": samples}).data)
