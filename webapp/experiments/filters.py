"""The experiments list's filters, shared by the page (``/experiments/?...``) and the API
(``/api/v1/experiments/?...``), so both answer the same question the same way."""
import django_filters
from django.db.models import Q

from webapp.experiments.models import Experiment
from webapp.sweeps.models import Sweep
from webapp.teams.access import visible

#: Sorts the list offers; "-" first is descending.
ORDERINGS = {
    "-created_at": "newest first", "created_at": "oldest first", "-best_miou": "best mIoU first",
    "best_miou": "worst mIoU first", "position": "queue order",
}


class IdsFilter(django_filters.BaseInFilter, django_filters.NumberFilter):
    pass


class ExperimentFilter(django_filters.FilterSet):
    method = django_filters.CharFilter(field_name="config__method", help_text="Semi-supervised method name")
    arch = django_filters.CharFilter(field_name="config__arch", help_text="Architecture name")
    labeled = django_filters.CharFilter(field_name="config__labeled", help_text="Label budget, as launched (1/16, 16)")
    owner = django_filters.CharFilter(field_name="created_by__username", help_text="Username of who launched it")
    sweep = django_filters.ModelChoiceFilter(queryset=lambda request: visible(Sweep.objects.all(), request.user),
                                             help_text="Id of the sweep that launched the runs")
    tag = django_filters.CharFilter(field_name="tags__name", help_text="Runs with this tag")
    starred = django_filters.BooleanFilter(field_name="starred", help_text="true: only the runs you starred")
    search = django_filters.CharFilter(method="_search", help_text="Words found in the name, method or architecture")
    ids = IdsFilter(field_name="id", help_text="Comma-separated ids (the page refreshes its visible rows with it)")

    class Meta:
        model = Experiment
        fields = ["status", "dataset", "queue"]

    def _search(self, queryset, name, value):
        for word in value.split()[:10]:
            queryset = queryset.filter(Q(name__icontains=word) | Q(config__method__icontains=word)
                                       | Q(config__arch__icontains=word))
        return queryset
