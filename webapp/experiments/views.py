from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from engine.config import ConfigError
from webapp.experiments import lifecycle
from webapp.experiments.forms import ExperimentForm, catalogue_options, dataset_choices, initial_from
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import Experiment
from webapp.teams.access import can_write, get_for_user, get_rw_for_user, visible


@login_required
def experiment_list(request):
    experiments = visible(Experiment.objects.select_related("dataset", "team"), request.user)
    return render(request, "experiments/list.html", {"experiments": experiments[:200]})


@login_required
def experiment_new(request):
    initial = {"dataset": request.GET.get("dataset")} if request.GET.get("dataset") else None
    if request.GET.get("clone"):
        source = get_for_user(Experiment.objects.select_related("dataset"), request.user, request.GET["clone"])
        initial = initial_from(source)
    form = ExperimentForm(request.POST or None, datasets=dataset_choices(request.user), initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            experiment = launch_experiment(form.cleaned_data["dataset"], form.config_values(), request.user,
                                           form.cleaned_data["name"])
        except ConfigError as error:
            form.add_config_errors(error.errors)
        else:
            messages.success(request, "Experiment queued.")
            return redirect("experiments:detail", pk=experiment.pk)
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "label_budgets": form.label_budgets, "catalogue": catalogue_options()}
    return render(request, "experiments/new.html", context, status=status)


@login_required
def experiment_detail(request, pk):
    experiment = get_for_user(Experiment.objects.select_related("dataset", "team"), request.user, pk)
    context = {
        "experiment": experiment,
        "last_evaluation": experiment.evaluations.order_by("-step").first(),
        "events": experiment.events.all(),
        "can_write": can_write(experiment.team, request.user),
        "queue_position": lifecycle.queue_positions(experiment.queue).get(experiment.pk),
        "moves": lifecycle.MOVES,
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
    return redirect("experiments:detail", pk=experiment.pk)
