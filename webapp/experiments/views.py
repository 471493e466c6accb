from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from engine.config import ConfigError
from webapp.datasets.models import Dataset
from webapp.experiments import lifecycle
from webapp.experiments.downloads import checkpoints, has_metrics
from webapp.experiments.filters import ORDERINGS, ExperimentFilter
from webapp.experiments.forms import ExperimentForm, dataset_choices, initial_from
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import Experiment
from webapp.review.services import review_context, with_review
from webapp.sweeps.services import launch_sweep
from webapp.teams.access import can_write, get_for_user, get_rw_for_user, visible, writable_teams_of

LIST_PAGE_SIZE = 50


@login_required
def experiment_list(request):
    """Filters, search and sort (the API's, ``webapp.experiments.filters``), 50 rows a page."""
    experiments = with_review(visible(Experiment.objects.select_related("dataset", "created_by"), request.user),
                              request.user)
    filters = ExperimentFilter(request.GET, queryset=experiments, request=request)
    ordering = request.GET.get("sort") if request.GET.get("sort") in ORDERINGS else "-created_at"
    rows = filters.qs.order_by(ordering, "-pk") if filters.is_valid() else experiments.none()
    page = Paginator(rows, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    positions = {**lifecycle.queue_positions("gpu"), **lifecycle.queue_positions("cpu")}
    for experiment in page:
        experiment.queue_position = positions.get(experiment.pk)
    context = {
        "page": page, "filters": filters, "orderings": ORDERINGS, "ordering": ordering,
        "writable_teams": set(writable_teams_of(request.user).values_list("pk", flat=True)), "moves": lifecycle.MOVES,
        "datasets": visible(Dataset.objects.all(), request.user).only("pk", "name"),
        "statuses": Experiment.Status.choices,
    }
    return render(request, "experiments/list.html", context)


@login_required
def experiment_new(request):
    """One run, or a sweep (a grid of runs) when the form's mode says so; refusals beside their fields."""
    initial = {"dataset": request.GET.get("dataset")} if request.GET.get("dataset") else None
    if request.GET.get("clone"):
        source = get_for_user(Experiment.objects.select_related("dataset"), request.user, request.GET["clone"])
        initial = initial_from(source)
    form = ExperimentForm(request.POST or None, datasets=dataset_choices(request.user), initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            where = _launch(form, request)
        except ConfigError as error:
            form.add_config_errors(error.errors)
        else:
            return redirect(where)
    status = 400 if request.method == "POST" else 200
    return render(request, "experiments/new.html", {"form": form, "label_budgets": form.label_budgets}, status=status)


def _launch(form: ExperimentForm, request) -> str:
    """Queue what the valid form asks for; the URL to show next (the run, or the sweep's page)."""
    dataset = form.cleaned_data["dataset"]
    if form.is_sweep:
        sweep = launch_sweep(dataset, form.sweep_values(), request.user, form.cleaned_data["sweep_name"].strip())
        count = sweep.experiments.count()
        messages.success(request, f"Sweep “{sweep.name}” launched: {count} run{pluralize(count)} queued.")
        return reverse("sweeps:detail", kwargs={"pk": sweep.pk})
    experiment = launch_experiment(dataset, form.config_values(), request.user, form.cleaned_data["name"])
    messages.success(request, "Experiment queued.")
    return reverse("experiments:detail", kwargs={"pk": experiment.pk})


@login_required
def experiment_detail(request, pk):
    experiment = get_for_user(Experiment.objects.select_related("dataset", "team"), request.user, pk)
    context = {
        "experiment": experiment,
        "last_evaluation": experiment.evaluations.order_by("-step").first(),
        "events": experiment.events.all(),
        "checkpoints": checkpoints(experiment),
        "has_metrics": has_metrics(experiment),
        "can_write": can_write(experiment.team, request.user),
        "queue_position": lifecycle.queue_positions(experiment.queue).get(experiment.pk),
        "moves": lifecycle.MOVES,
        **review_context("experiments", experiment, request.user),
    }
    return render(request, "experiments/detail.html", context)


@login_required
@require_POST
def experiment_cancel(request, pk):
    experiment = get_rw_for_user(Experiment.objects.all(), request.user, pk)
    lifecycle.request_cancel(experiment.pk)
    return redirect("experiments:detail", pk=experiment.pk)


@login_required
@require_POST
def experiment_retry(request, pk):
    experiment = get_rw_for_user(Experiment.objects.all(), request.user, pk)
    try:
        lifecycle.retry(experiment.pk)
    except lifecycle.TransitionRefused as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Queued again; it resumes from its last checkpoint.")
    return redirect("experiments:detail", pk=experiment.pk)


@login_required
@require_POST
def experiment_move(request, pk):
    experiment = get_rw_for_user(Experiment.objects.all(), request.user, pk)
    try:
        lifecycle.move(experiment.pk, request.POST.get("where", ""))
    except lifecycle.TransitionRefused as error:
        messages.error(request, str(error))
    back = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}) and back.startswith("/experiments/"):
        return redirect(back)  # the list the buttons were pressed on, with its filters
    return redirect("experiments:detail", pk=experiment.pk)
