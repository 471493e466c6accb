from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from webapp.datasets.models import Dataset
from webapp.experiments import lifecycle
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import Evaluation, Experiment
from webapp.teams.access import get_rw_for_user, require_write, visible

#: Most points one metrics request returns per name; the page asks again for the rest.
MAX_POINTS = 5000


class ExperimentSerializer(serializers.ModelSerializer):
    dataset = serializers.PrimaryKeyRelatedField(read_only=True)
    team = serializers.StringRelatedField()
    progress = serializers.FloatField(read_only=True)
    eta_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Experiment
        fields = ["id", "name", "team", "dataset", "config", "queue", "status", "position", "progress", "current_step",
                  "total_steps", "steps_per_second", "eta_seconds", "best_miou", "final_miou", "throughput", "error",
                  "traceback", "log_tail", "cancel_requested", "attempt", "crashes", "worker", "device_name",
                  "device_memory_mb", "heartbeat_at", "created_at", "started_at", "finished_at"]


class ExperimentCreateSerializer(serializers.Serializer):
    dataset = serializers.PrimaryKeyRelatedField(queryset=Dataset.objects.none())
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    config = serializers.DictField(help_text="Flat run configuration (see /api/v1/catalogue/)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = visible(Dataset.objects.all(), self.context["request"].user)


class CloneSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    config = serializers.DictField(required=False, default=dict, help_text="Settings to change from the source run's")


class MoveSerializer(serializers.Serializer):
    where = serializers.ChoiceField(choices=lifecycle.MOVES)


class EvaluationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Evaluation
        fields = ["step", "miou", "iou", "pixel_accuracy", "mean_accuracy", "confusion_matrix", "class_names",
                  "throughput", "predictions", "created_at"]


def _refusable(transition, *args):
    try:
        return transition(*args)
    except lifecycle.TransitionRefused as error:
        raise ValidationError({"status": str(error)}) from None


def _after_step(request) -> int:
    raw = request.query_params.get("after_step", "-1")
    try:
        return int(raw)
    except ValueError:
        raise ValidationError({"after_step": f"expected a whole number, got {raw!r}"}) from None


class ExperimentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    serializer_class = ExperimentSerializer

    def get_queryset(self):
        return visible(Experiment.objects.select_related("team", "dataset"), self.request.user)

    def create(self, request, *args, **kwargs):
        payload = ExperimentCreateSerializer(data=request.data, context={"request": request})
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        require_write(data["dataset"].team, request.user)
        experiment = launch_experiment(data["dataset"], data["config"], request.user, data["name"])
        return Response(ExperimentSerializer(experiment).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        experiment = get_rw_for_user(self.get_queryset(), request.user, pk)
        return Response(ExperimentSerializer(lifecycle.request_cancel(experiment.pk)).data)

    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Queue a failed or cancelled run again; it resumes from its last checkpoint."""
        experiment = get_rw_for_user(self.get_queryset(), request.user, pk)
        return Response(ExperimentSerializer(_refusable(lifecycle.retry, experiment.pk)).data)

    @action(detail=True, methods=["post"])
    def move(self, request, pk=None):
        """Move a queued run to the top, up, down or to the bottom of its queue."""
        experiment = get_rw_for_user(self.get_queryset(), request.user, pk)
        payload = MoveSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        return Response(ExperimentSerializer(_refusable(lifecycle.move, experiment.pk, payload.validated_data["where"])).data)

    @action(detail=True, methods=["post"])
    def clone(self, request, pk=None):
        """A new queued run with the source's settings, changed by ``config`` where given."""
        source = self.get_object()
        require_write(source.team, request.user)
        payload = CloneSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        experiment = launch_experiment(source.dataset, {**source.config, **data["config"]}, request.user, data["name"])
        return Response(ExperimentSerializer(experiment).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["get"])
    def metrics(self, request, pk=None):
        """Points after ``after_step`` for ``names`` (comma-separated; all names when absent)."""
        experiment = self.get_object()
        after_step = _after_step(request)
        points = experiment.metric_points.filter(step__gt=after_step).order_by("step")
        names = [n for n in request.query_params.get("names", "").split(",") if n]
        if names:
            points = points.filter(name__in=names)
        series: dict[str, dict[str, list]] = {}
        for name, step, value in points.values_list("name", "step", "value")[: MAX_POINTS * max(1, len(names))]:
            entry = series.setdefault(name, {"steps": [], "values": []})
            entry["steps"].append(step)
            entry["values"].append(value)
        last_step = max((s["steps"][-1] for s in series.values()), default=after_step)
        return Response({
            "experiment": experiment.pk, "status": experiment.status, "current_step": experiment.current_step,
            "total_steps": experiment.total_steps, "best_miou": experiment.best_miou,
            "final_miou": experiment.final_miou, "error": experiment.error, "last_step": last_step, "metrics": series,
        })

    @action(detail=True, methods=["get"])
    def evaluations(self, request, pk=None):
        experiment = self.get_object()
        evaluations = experiment.evaluations.filter(step__gt=_after_step(request))
        return Response({"experiment": experiment.pk, "evaluations": EvaluationSerializer(evaluations, many=True).data})
