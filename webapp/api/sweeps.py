"""The sweeps API: launch a grid of runs in one call, list sweeps, read one back with its runs and table."""
import django_filters
from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from engine.config import MAX_SEED
from engine.sweeps import MAX_RUNS
from webapp.api.experiments import ConfigField
from webapp.api.fields import VisibleRelatedField
from webapp.api.review import REVIEW_FIELDS, ReviewActions, ReviewFields
from webapp.datasets.models import Dataset
from webapp.experiments.models import Experiment
from webapp.review.services import with_review
from webapp.sweeps.models import Sweep
from webapp.sweeps.services import MAX_NAME_LENGTH, TABLE_SCORE, launch_sweep, sweep_runs, sweep_table
from webapp.teams.access import require_write, visible

SCORE_HELP = (f"The score summarised: {TABLE_SCORE} (the last evaluation's mIoU) of the runs that succeeded; "
              "queued, running, failed and cancelled runs are not counted")


class SweepCreateSerializer(serializers.Serializer):
    dataset = VisibleRelatedField(Dataset)
    name = serializers.CharField(max_length=MAX_NAME_LENGTH, help_text="Unique among your team's sweeps")
    methods = serializers.ListField(
        child=serializers.CharField(max_length=200), allow_empty=False, min_length=1, max_length=MAX_RUNS,
        help_text="Methods (see /api/v1/catalogue/), each NAME or NAME:OPTION=VALUE[,OPTION=VALUE]")
    budgets = serializers.ListField(
        child=serializers.CharField(max_length=40), allow_empty=False, min_length=1, max_length=MAX_RUNS,
        help_text="Label budgets: fractions (1/16, 1/8, 1/4, 1/2, all) or counts (16)")
    seeds = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=MAX_SEED), allow_empty=False, min_length=1,
        max_length=MAX_RUNS, help_text="Seeds; each also draws the labelled subset")
    archs = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, default=list, max_length=MAX_RUNS,
        help_text="Architectures (see /api/v1/catalogue/); left out or empty: the one in config")
    config = ConfigField(required=False, default=dict,
                         help_text="Settings every run shares (see /api/v1/catalogue/), without arch when archs is "
                                   "given and without method, labeled and seed; left-out fields take their defaults")


class SweepSerializer(ReviewFields, serializers.ModelSerializer):
    team = serializers.StringRelatedField()
    dataset = serializers.PrimaryKeyRelatedField(read_only=True)
    methods = serializers.ListField(child=serializers.CharField(), source="grid.methods", read_only=True)
    budgets = serializers.ListField(child=serializers.CharField(), source="grid.budgets", read_only=True)
    seeds = serializers.ListField(child=serializers.IntegerField(), source="grid.seeds", read_only=True)
    archs = serializers.ListField(child=serializers.CharField(), source="grid.archs", read_only=True,
                                  help_text="Empty: no architecture axis")
    config = ConfigField(source="grid.config", read_only=True, help_text="The base settings every run shares")
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True)
    experiments = serializers.PrimaryKeyRelatedField(many=True, read_only=True,
                                                     help_text="The sweep's runs, in the order they were queued")

    class Meta:
        model = Sweep
        fields = ["id", "name", "team", "dataset", "methods", "budgets", "seeds", "archs", "config", "created_by",
                  "created_at", "experiments", *REVIEW_FIELDS]


class SweepRunSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="experiment.pk")
    method = serializers.CharField(source="cell.method")
    budget = serializers.CharField(source="cell.budget")
    seed = serializers.IntegerField(source="cell.seed")
    arch = serializers.CharField(source="experiment.config.arch")
    status = serializers.ChoiceField(source="experiment.status", choices=Experiment.Status.choices)
    progress = serializers.FloatField(source="experiment.progress")
    best_miou = serializers.FloatField(source="experiment.best_miou", allow_null=True)
    final_miou = serializers.FloatField(source="experiment.final_miou", allow_null=True)


class SweepCellSerializer(serializers.Serializer):
    budget = serializers.CharField()
    mean = serializers.FloatField(allow_null=True, help_text="null until a run of this cell has succeeded")
    sd = serializers.FloatField(allow_null=True, help_text="Sample standard deviation over seeds; null below two runs")
    n = serializers.IntegerField(help_text="Runs counted (succeeded)")


class SweepRowSerializer(serializers.Serializer):
    method = serializers.CharField()
    arch = serializers.CharField(allow_null=True, help_text="null when the sweep has no architecture axis")
    cells = SweepCellSerializer(many=True, help_text="One per budget, in the order of budgets")


class SweepTableSerializer(serializers.Serializer):
    score = serializers.CharField(help_text=SCORE_HELP)
    budgets = serializers.ListField(child=serializers.CharField(), help_text="Smallest first")
    rows = SweepRowSerializer(many=True)


class SweepDetailSerializer(SweepSerializer):
    """A sweep with its runs and its method x budget table."""

    # The view computes the runs and the table once and passes both in the context.
    runs = serializers.SerializerMethodField()
    table = serializers.SerializerMethodField()

    class Meta(SweepSerializer.Meta):
        fields = [*SweepSerializer.Meta.fields, "runs", "table"]

    @extend_schema_field(SweepRunSerializer(many=True))
    def get_runs(self, sweep):
        return SweepRunSerializer(self.context["runs"], many=True).data

    @extend_schema_field(SweepTableSerializer)
    def get_table(self, sweep):
        table = self.context["table"]
        return SweepTableSerializer({"score": TABLE_SCORE, "budgets": table.budgets, "rows": table.rows}).data


class SweepFilter(django_filters.FilterSet):
    tag = django_filters.CharFilter(field_name="tags__name", help_text="Sweeps with this tag")
    starred = django_filters.BooleanFilter(field_name="starred", help_text="true: only the sweeps you starred")

    class Meta:
        model = Sweep
        fields = ["dataset"]


class SweepViewSet(ReviewActions, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                   mixins.DestroyModelMixin, viewsets.GenericViewSet):
    serializer_class = SweepSerializer
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend]
    filterset_class = SweepFilter

    def get_queryset(self):
        runs = Prefetch("experiments", queryset=Experiment.objects.only("pk", "sweep_id").order_by("pk"))
        sweeps = visible(Sweep.objects.select_related("team", "created_by").prefetch_related(runs), self.request.user)
        return with_review(sweeps, self.request.user)

    @extend_schema(request=SweepCreateSerializer, responses={201: SweepSerializer})
    def create(self, request, *args, **kwargs):
        """Queue every run of the grid (methods x budgets x seeds [x archs]) as one named sweep, all or nothing."""
        payload = SweepCreateSerializer(data=request.data, context={"request": request})
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        require_write(data["dataset"].team, request.user)
        sweep = launch_sweep(data["dataset"], data, request.user, data["name"])
        return Response(self.get_serializer(self.get_queryset().get(pk=sweep.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=SweepDetailSerializer)
    def retrieve(self, request, *args, **kwargs):
        """The sweep, its runs, and the method x budget table (mean, sd, n over seeds)."""
        sweep = self.get_object()
        runs = sweep_runs(sweep)
        context = {"request": request, "runs": runs, "table": sweep_table(sweep, runs)}
        return Response(SweepDetailSerializer(sweep, context=context).data)

    def perform_destroy(self, instance):
        """The sweep goes; its runs stay, outside any sweep (delete them one by one)."""
        require_write(instance.team, self.request.user)
        instance.delete()
