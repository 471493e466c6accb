"""The experiments API: launch, list with filters, watch (metrics, events and the run's live state,
evaluations, per-image scores and prediction samples: ``webapp/api/evaluation_images.py``), control
(cancel, retry, move, clone, delete)."""
import json

import django_filters
from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import filters, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from engine.config import config_json_schema
from webapp.api.evaluation_images import EvaluationImagesMixin, PredictionSampleSerializer, sample_urls
from webapp.api.fields import VisibleRelatedField
from webapp.api.params import whole_number
from webapp.api.review import REVIEW_FIELDS, ReviewActions, ReviewFields
from webapp.api.transfer import TransferEvaluationsMixin
from webapp.datasets.models import Dataset
from webapp.experiments import lifecycle
from webapp.experiments.deletion import ExperimentInUse, delete_experiment
from webapp.experiments.downloads import checkpoints
from webapp.experiments.filters import ORDERINGS, ExperimentFilter
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import Evaluation, Experiment, ExperimentEvent
from webapp.experiments.series import csv_rows, downsampled, to_series
from webapp.review.services import with_review
from webapp.teams.access import get_rw_for_user, require_write, visible

#: Most points one metrics request returns; the page asks again for the rest.
MAX_POINTS = 5000
#: Steps are stored as 32-bit integers.
MAX_STEP = 2**31 - 1
#: Most events one events request returns; the page asks again with ``after`` for the rest.
MAX_EVENTS = 500
#: Event ids are 64-bit integers.
MAX_EVENT_ID = 2**63 - 1


@extend_schema_field(config_json_schema())
class ConfigField(serializers.Field):
    """A run's settings as a JSON object, whatever the body's content type: in a form or
    multipart body, the field's text must be that object written as JSON."""

    default_error_messages = {"not_object": "must be a JSON object of run settings, e.g. {{\"arch\": \"unet\"}} "
                                            "(see /api/v1/catalogue/); got {kind}"}

    def to_internal_value(self, data):
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except (ValueError, RecursionError):
                self.fail("not_object", kind="text that is not JSON")
        if not isinstance(data, dict):
            self.fail("not_object", kind=type(data).__name__.replace("NoneType", "null"))
        return data

    def to_representation(self, value):
        return value


class ExperimentSerializer(ReviewFields, serializers.ModelSerializer):
    dataset = serializers.PrimaryKeyRelatedField(read_only=True)
    team = serializers.StringRelatedField()
    progress = serializers.FloatField(read_only=True)
    eta_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Experiment
        fields = ["id", "name", "team", "dataset", "sweep", "config", "queue", "status", "position", "progress",
                  "current_step", "total_steps", "steps_per_second", "eta_seconds", "best_miou", "final_miou",
                  "throughput", "error", "traceback", "log_tail", "cancel_requested", "attempt", "crashes", "worker",
                  "device_name", "device_memory_mb", "heartbeat_at", "created_at", "started_at", "finished_at",
                  *REVIEW_FIELDS]


class ExperimentCreateSerializer(serializers.Serializer):
    dataset = VisibleRelatedField(Dataset)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    config = ConfigField(help_text="The run's settings (see /api/v1/catalogue/); left-out fields take their defaults")


class CloneSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    config = ConfigField(required=False, default=dict, help_text="Settings to change from the source run's")


class MoveSerializer(serializers.Serializer):
    where = serializers.ChoiceField(choices=lifecycle.MOVES)


class EvaluationSerializer(serializers.ModelSerializer):
    predictions = serializers.SerializerMethodField(help_text="The prediction samples: the first validation images, "
                                                              "then the step's hardest")

    class Meta:
        model = Evaluation
        fields = ["step", "miou", "iou", "pixel_accuracy", "mean_accuracy", "confusion_matrix", "class_names",
                  "throughput", "predictions", "created_at"]

    @extend_schema_field(PredictionSampleSerializer(many=True))
    def get_predictions(self, evaluation):
        return [sample_urls(self.context["request"], sample) for sample in evaluation.predictions]


def _refusable(transition, *args):
    try:
        return transition(*args)
    except lifecycle.TransitionRefused as error:
        raise ValidationError({"status": str(error)}) from None


def _step_param(request, name: str, default: int | None) -> int | None:
    return whole_number(request, name, default, -1, MAX_STEP)


def _names(request) -> list[str]:
    """The ``names`` parameter: comma-separated metric names, at most 100."""
    return [n for n in request.query_params.get("names", "").split(",") if n][:100]


class MetricSeriesSerializer(serializers.Serializer):
    steps = serializers.ListField(child=serializers.IntegerField())
    values = serializers.ListField(child=serializers.FloatField(allow_null=True), help_text="null where not finite")


class MetricsSerializer(serializers.Serializer):
    experiment = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Experiment.Status.choices)
    current_step = serializers.IntegerField()
    total_steps = serializers.IntegerField()
    best_miou = serializers.FloatField(allow_null=True)
    final_miou = serializers.FloatField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    last_step = serializers.IntegerField(help_text="Ask again with after_step=last_step for the points after these")
    metrics = serializers.DictField(child=MetricSeriesSerializer(), help_text="name -> its points after after_step")


class EventSerializer(serializers.ModelSerializer):
    kind_display = serializers.CharField(source="get_kind_display", help_text="The kind in words, as the page shows it")

    class Meta:
        model = ExperimentEvent
        fields = ["id", "kind", "kind_display", "message", "created_at"]


class CheckpointsSerializer(serializers.Serializer):
    best = serializers.BooleanField(help_text="best.pt exists (checkpoint?which=best)")
    last = serializers.BooleanField(help_text="last.pt exists (checkpoint?which=last)")


class RunStateSerializer(serializers.ModelSerializer):
    """What the experiment page's facts table, error box and log tail show, read on every poll."""
    progress = serializers.FloatField(read_only=True)
    eta_seconds = serializers.FloatField(read_only=True, allow_null=True)
    checkpoints = serializers.SerializerMethodField()

    class Meta:
        model = Experiment
        fields = ["status", "current_step", "total_steps", "progress", "steps_per_second", "eta_seconds", "attempt",
                  "crashes", "worker", "device_name", "device_memory_mb", "heartbeat_at", "started_at", "finished_at",
                  "error", "traceback", "log_tail", "checkpoints"]

    @extend_schema_field(CheckpointsSerializer)
    def get_checkpoints(self, experiment):
        return checkpoints(experiment)


class EventsSerializer(serializers.Serializer):
    experiment = serializers.IntegerField()
    events = EventSerializer(many=True, help_text="Oldest first, after the id given as after")
    last_event = serializers.IntegerField(help_text="Ask again with after=last_event for the events after these")
    run = RunStateSerializer(help_text="The run's state now: status, worker, heartbeat, ETA, error, log tail")


class EvaluationsSerializer(serializers.Serializer):
    experiment = serializers.IntegerField()
    evaluations = EvaluationSerializer(many=True)


class ExperimentViewSet(ReviewActions, EvaluationImagesMixin, TransferEvaluationsMixin, mixins.ListModelMixin,
                        mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin,
                        viewsets.GenericViewSet):
    serializer_class = ExperimentSerializer
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend, filters.OrderingFilter]
    filterset_class = ExperimentFilter
    ordering_fields = sorted({field.lstrip("-") for field in ORDERINGS} | {"final_miou"})
    ordering = ["-created_at"]

    def get_queryset(self):
        return with_review(visible(Experiment.objects.select_related("team", "dataset"), self.request.user),
                           self.request.user)

    @extend_schema(request=ExperimentCreateSerializer, responses={201: ExperimentSerializer})
    def create(self, request, *args, **kwargs):
        payload = ExperimentCreateSerializer(data=request.data, context={"request": request})
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        require_write(data["dataset"].team, request.user)
        experiment = launch_experiment(data["dataset"], data["config"], request.user, data["name"])
        return Response(self.get_serializer(experiment).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        require_write(instance.team, self.request.user)
        try:
            delete_experiment(instance)
        except ExperimentInUse as error:
            raise ValidationError({"status": str(error)}) from None

    @extend_schema(request=None, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        experiment = get_rw_for_user(self.get_queryset(), request.user, pk)
        return Response(self.get_serializer(lifecycle.request_cancel(experiment.pk)).data)

    @extend_schema(request=None, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Queue a failed or cancelled run again; it resumes from its last checkpoint."""
        experiment = get_rw_for_user(self.get_queryset(), request.user, pk)
        return Response(self.get_serializer(_refusable(lifecycle.retry, experiment.pk)).data)

    @extend_schema(request=MoveSerializer, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"])
    def move(self, request, pk=None):
        """Move a queued run to the top, up, down or to the bottom of its queue."""
        experiment = get_rw_for_user(self.get_queryset(), request.user, pk)
        payload = MoveSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        moved = _refusable(lifecycle.move, experiment.pk, payload.validated_data["where"])
        return Response(self.get_serializer(moved).data)

    @extend_schema(request=CloneSerializer, responses={201: ExperimentSerializer})
    @action(detail=True, methods=["post"])
    def clone(self, request, pk=None):
        """A new queued run with the source's settings, changed by ``config`` where given."""
        source = self.get_object()
        require_write(source.team, request.user)
        payload = CloneSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        experiment = launch_experiment(source.dataset, {**source.config, **data["config"]}, request.user, data["name"])
        return Response(self.get_serializer(experiment).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=MetricsSerializer, parameters=[
        OpenApiParameter("names", str, description="Comma-separated metric names (all when absent)"),
        OpenApiParameter("after_step", int,
                         description="Live clients: only points after this step (-1: from the start)"),
        OpenApiParameter("max_points", int,
                         description=f"Downsample: at most this many points per name (2-{MAX_POINTS}), "
                                     "each bucket's lowest and highest kept"),
        OpenApiParameter("from_step", int, description="Downsample from this step (default 0)"),
        OpenApiParameter("to_step", int, description="Downsample up to this step (default the last)")])
    @action(detail=True, methods=["get"])
    def metrics(self, request, pk=None):
        """Points after ``after_step`` for ``names``, at most 5,000 per call, oldest first; or, with
        ``max_points``, a downsampled series between ``from_step`` and ``to_step`` that keeps its shape."""
        experiment = self.get_object()
        names = _names(request)
        if request.query_params.get("max_points"):
            max_points = whole_number(request, "max_points", MAX_POINTS, 2, MAX_POINTS)
            from_step = _step_param(request, "from_step", 0)
            to_step = _step_param(request, "to_step", None)
            if to_step is not None and from_step > to_step:
                raise ValidationError({"from_step": f"must not exceed to_step ({to_step})"})
            series = downsampled(experiment.pk, names, max(0, from_step), to_step, max_points)
            last_step = max((entry["steps"][-1] for entry in series.values()), default=-1)
        else:
            after_step = _step_param(request, "after_step", -1)
            points = experiment.metric_points.filter(step__gt=after_step).order_by("step", "name")
            if names:
                points = points.filter(name__in=names)
            rows = list(points.values_list("name", "step", "value")[: MAX_POINTS + 1])
            last_step = rows[-1][1] if rows else after_step
            if len(rows) > MAX_POINTS:  # the last step may be cut: hand it out whole on the next call
                last_step = rows[-1][1] - 1
                rows = [row for row in rows if row[1] <= last_step]
            series = to_series(rows)
        return Response(MetricsSerializer({
            "experiment": experiment.pk, "status": experiment.status, "current_step": experiment.current_step,
            "total_steps": experiment.total_steps, "best_miou": experiment.best_miou,
            "final_miou": experiment.final_miou, "error": experiment.error, "last_step": last_step, "metrics": series,
        }).data)

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR}, parameters=[
        OpenApiParameter("names", str, description="Comma-separated metric names (all when absent)")])
    @action(detail=True, methods=["get"], url_path="metrics-csv")
    def metrics_csv(self, request, pk=None):
        """Every stored point as CSV (name, step, value), streamed."""
        experiment = self.get_object()
        names = _names(request)
        response = StreamingHttpResponse(csv_rows(experiment.pk, names), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="experiment-{experiment.pk}-metrics.csv"'
        return response

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY}, parameters=[
        OpenApiParameter("which", str, enum=["last", "best"],
                         description="last.pt (resumable) or best.pt (default best)")])
    @action(detail=True, methods=["get"])
    def checkpoint(self, request, pk=None):
        """The run's checkpoint file, for ``python -m engine eval`` or ``predict``."""
        experiment = self.get_object()
        which = request.query_params.get("which", "best")
        if which not in ("last", "best"):
            raise ValidationError({"which": "expected last or best"})
        path = experiment.output_dir / f"{which}.pt"
        if not path.is_file():
            raise NotFound(f"this run has no {which}.pt yet")
        return FileResponse(open(path, "rb"), as_attachment=True, filename=f"experiment-{experiment.pk}-{which}.pt")

    @extend_schema(responses=EventsSerializer, parameters=[
        OpenApiParameter("after", int, description="Live clients: only events with a larger id (-1: all)")])
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        """The run's lifecycle events after ``after`` (at most 500, oldest first) and its state now,
        for a page that shows both live."""
        experiment = self.get_object()
        after = whole_number(request, "after", -1, -1, MAX_EVENT_ID)
        events = list(experiment.events.filter(pk__gt=after).order_by("pk")[:MAX_EVENTS])
        return Response(EventsSerializer({
            "experiment": experiment.pk, "events": events, "last_event": events[-1].pk if events else after,
            "run": experiment,
        }).data)

    @extend_schema(responses=EvaluationsSerializer, parameters=[
        OpenApiParameter("after_step", int, description="Only evaluations after this step (-1: all)")])
    @action(detail=True, methods=["get"])
    def evaluations(self, request, pk=None):
        experiment = self.get_object()
        evaluations = experiment.evaluations.filter(step__gt=_step_param(request, "after_step", -1))
        return Response(EvaluationsSerializer({"experiment": experiment.pk, "evaluations": evaluations},
                                              context={"request": request}).data)
