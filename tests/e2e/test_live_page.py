"""A real browser watches a running experiment: the loss curve grows without a reload."""
import pytest

from tests.conftest import login, wait_for
from webapp.experiments.launch import launch_experiment
from webapp.experiments.lifecycle import request_cancel
from webapp.experiments.models import Experiment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LONG_RUN = {"iters": 3000, "batch_size": 4, "labeled": "1/2", "crop_size": 32, "device": "cpu", "log_every": 2,
            "eval_every": 50, "model_options": {"base_width": 4, "depth": 2}}


def loss_points(page) -> int:
    return page.evaluate("""() => {
        const chart = document.getElementById('loss-chart');
        return chart && chart.data ? chart.data.reduce((n, trace) => Math.max(n, trace.x.length), 0) : 0;
    }""")


def test_loss_curve_grows_without_reload(page, live_server, team_users, dataset, celery_worker):
    experiment = launch_experiment(dataset, dict(LONG_RUN), team_users["alice"])
    wait_for(lambda: Experiment.objects.get(pk=experiment.pk).current_step >= 4, timeout=120,
             message="the run to start")
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/experiments/{experiment.pk}/")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    wait_for(lambda: loss_points(page) > 0, timeout=30, message="the first points on the chart")
    first = loss_points(page)
    wait_for(lambda: loss_points(page) >= first + 3, timeout=60, message="more points on the loss curve")
    assert navigations == []  # the page was never reloaded
    assert page.locator("#status").inner_text() == "Running"
    request_cancel(experiment.pk)
    wait_for(lambda: Experiment.objects.get(pk=experiment.pk).status == "cancelled", timeout=60, message="the cancel")
    wait_for(lambda: page.locator("#status").inner_text() == "Cancelled", timeout=30, message="the page to show it")
    assert not page.locator("#cancel-form").is_visible()


def test_plotly_is_served_locally(page, live_server, team_users):
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/experiments/")
    response = page.request.get(f"{live_server.url}/static/vendor/plotly.min.js")
    assert response.ok and len(response.body()) > 1_000_000
    assert all(url.startswith(live_server.url) for url in requests)
