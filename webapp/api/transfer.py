"""Cross-dataset evaluations of a run, as an action of the experiments API.

``GET /api/v1/experiments/{id}/transfer-evaluations/`` lists them (newest first) with their
scores beside the run's own and the URLs of their sample PNGs; ``POST`` with
``{"dataset": id}`` queues one (201), or answers 400 naming the field: ``dataset`` for a
dataset that is not another one of the run's team or whose classes differ (every
difference listed), ``status`` for a run that has not succeeded, ``checkpoint`` for a
run without its best.pt (``webapp.transfer.services``).
``GET /api/v1/transfer-evaluations/{id}/`` reads one; ``DELETE`` removes it and its
samples (writers of the run's team; a running one is stopped by its worker).
"""
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from webapp.api.evaluation_images import PredictionSampleSerializer, sample_urls
from webapp.datasets.models import Dataset
from webapp.experiments.templatetags.seglab import class_colors
from webapp.teams.access import require_write
from webapp.transfer.models import TransferEvaluation
from webapp.transfer.services import delete_evaluation, request_transfer, visible_evaluations


class TransferEvaluationSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="transfer-evaluation-detail",
                                               help_text="This evaluation (GET, DELETE)")
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)
    class_colors = serializers.SerializerMethodField(help_text="The other dataset's class colours, in class order")
    requested_by = serializers.StringRelatedField()
    predictions = serializers.SerializerMethodField(help_text="Samples of the other dataset: its first labelled "
                                                              "images, then its hardest")

    class Meta:
        model = TransferEvaluation
        fields = ["id", "url", "experiment", "dataset", "dataset_name", "status", "error", "step", "num_images",
                  "miou", "iou", "in_domain_miou", "in_domain_iou", "pixel_accuracy", "confusion_matrix", "class_names",
                  "class_colors", "predictions", "requested_by", "requested_at", "finished_at"]

    def get_class_colors(self, evaluation) -> list[str]:
        return class_colors(evaluation.dataset.classes)

    @extend_schema_field(PredictionSampleSerializer(many=True))
    def get_predictions(self, evaluation):
        return [sample_urls(self.context["request"], sample) for sample in evaluation.predictions]


class RunTeamDatasetField(serializers.PrimaryKeyRelatedField):
    """A dataset of the team of the run in the serializer's context (any other is "does not exist")."""

    def get_queryset(self):
        return Dataset.objects.filter(team_id=self.context["experiment"].team_id)


class TransferRequestSerializer(serializers.Serializer):
    dataset = RunTeamDatasetField(queryset=Dataset.objects.all(),
                                  help_text="Another dataset of the run's team, with the same classes")


class TransferEvaluationsSerializer(serializers.Serializer):
    experiment = serializers.IntegerField()
    transfer_evaluations = TransferEvaluationSerializer(many=True)


class TransferEvaluationsMixin:
    """For ExperimentViewSet: ``get_object`` is its team-scoped lookup (another team's run is a 404)."""

    @extend_schema(methods=["GET"], request=None, responses=TransferEvaluationsSerializer)
    @extend_schema(methods=["POST"], request=TransferRequestSerializer, responses={201: TransferEvaluationSerializer})
    @action(detail=True, methods=["get", "post"], url_path="transfer-evaluations", url_name="transfer-evaluations")
    def transfer_evaluations(self, request, pk=None):
        """The run's best checkpoint evaluated on other datasets of its team (POST queues one)."""
        experiment = self.get_object()
        context = {"request": request}
        if request.method == "POST":
            require_write(experiment.team, request.user)
            payload = TransferRequestSerializer(data=request.data, context={"experiment": experiment})
            payload.is_valid(raise_exception=True)
            evaluation = request_transfer(experiment, payload.validated_data["dataset"], request.user)
            return Response(TransferEvaluationSerializer(evaluation, context=context).data,
                            status=status.HTTP_201_CREATED)
        evaluations = experiment.transfer_evaluations.select_related("dataset", "requested_by")
        return Response(TransferEvaluationsSerializer({"experiment": experiment.pk,
                                                       "transfer_evaluations": evaluations}, context=context).data)


class TransferEvaluationViewSet(mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """One cross-dataset evaluation: members of the run's team read it, its writers delete it."""

    serializer_class = TransferEvaluationSerializer

    def get_queryset(self):
        return visible_evaluations(self.request.user)

    def perform_destroy(self, instance):
        delete_evaluation(instance, self.request.user)
