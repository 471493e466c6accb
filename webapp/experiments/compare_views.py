"""The compare page (``webapp/experiments/compare.py`` does the work; ``seglab/compare.js`` draws it)."""
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse

from webapp.experiments import compare
from webapp.sweeps.services import sweep_plot, sweep_runs, sweep_table


def _runs(request):
    """The runs asked for and, for ``sweep=<id>``, the sweep with how many runs it has."""
    ids, sweep_id = request.GET.getlist("ids"), request.GET.get("sweep", "").strip()
    if ids and sweep_id:
        raise compare.CompareError("give either ids or sweep, not both")
    if sweep_id:
        sweep = compare.sweep_of(request.user, sweep_id)
        runs, total = compare.sweep_runs_to_compare(sweep)
        return runs, sweep, total
    return compare.runs_by_ids(request.user, compare.parse_ids(ids)), None, None


def _page_data(runs, points, front):
    return {
        "experiments_api": reverse("experiment-list"),
        "runs": [{"id": run.pk, "name": run.name, "status": run.status,
                  "metrics_url": reverse("experiment-metrics", args=[run.pk]),
                  "evaluations_url": reverse("experiment-evaluations", args=[run.pk])} for run in runs],
        "steps": compare.common_samples(runs),
        "speed": {"points": [{"id": p.run_id, "throughput": p.throughput, "miou": p.miou} for p in points],
                  "front": [p.run_id for p in front]},
    }


@login_required
def experiment_compare(request):
    try:
        runs, sweep, total = _runs(request)
    except compare.CompareError as error:
        return render(request, "experiments/compare.html", {"error": str(error)}, status=400)
    last = compare.last_evaluations(runs)
    points = compare.speed_points(runs, last)
    front = compare.pareto_front(points)
    context = {
        "runs": runs, "sweep": sweep, "sweep_total": total, "max_runs": compare.MAX_RUNS,
        "classes": compare.class_table(runs, last), "datasets": sorted({run.dataset.name for run in runs}),
        "unplaced": [run for run in runs if run.pk not in {p.run_id for p in points}],
        "page_data": _page_data(runs, points, front),
        "class_colors": runs[0].dataset.classes if runs else [],
    }
    if sweep is not None:
        table = sweep_table(sweep, sweep_runs(sweep))
        context.update(table=table, plot=sweep_plot(table))
    return render(request, "experiments/compare.html", context)
