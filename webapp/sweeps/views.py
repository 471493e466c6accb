from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.shortcuts import render

from webapp.experiments.models import Experiment
from webapp.review.services import review_context
from webapp.sweeps.models import Sweep
from webapp.sweeps.services import TABLE_SCORE, sweep_plot, sweep_runs, sweep_table
from webapp.teams.access import get_for_user, visible

PAGE_SIZE = 50


@login_required
def sweep_list(request):
    sweeps = visible(Sweep.objects.select_related("dataset", "created_by"), request.user).annotate(
        runs=Count("experiments", distinct=True),
        finished=Count("experiments", filter=Q(experiments__status__in=Experiment.FINISHED), distinct=True),
        star_count=Count("stars", distinct=True),
    ).prefetch_related("tags").order_by("-created_at", "-pk")  # Meta.ordering is not applied with GROUP BY
    if request.GET.get("tag"):
        sweeps = sweeps.filter(tags__name=request.GET["tag"])
    page = Paginator(sweeps, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "sweeps/list.html", {"page": page, "tag": request.GET.get("tag", "")})


@login_required
def sweep_detail(request, pk):
    sweep = get_for_user(Sweep.objects.select_related("dataset", "team", "created_by"), request.user, pk)
    runs = sweep_runs(sweep)
    table = sweep_table(sweep, runs)
    context = {
        "sweep": sweep, "runs": runs, "table": table, "plot": sweep_plot(table), "score": TABLE_SCORE,
        "finished": sum(run.experiment.is_finished for run in runs),
        **review_context("sweeps", sweep, request.user),
    }
    return render(request, "sweeps/detail.html", context)
