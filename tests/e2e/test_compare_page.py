"""A real browser compares two finished runs picked from the list: curves overlaid, the same
validation images' predictions side by side at one step, the best per-class IoU marked, and
the mIoU-versus-speed scatter with its Pareto front."""
import pytest

from tests.conftest import login, wait_for
from tests.finished_runs import EVALUATION_STEPS, SAMPLE_IDS, finished_run

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CANVAS_SUM = """(canvas) => {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0;
    for (let i = 0; i < data.length; i++) sum += data[i] * ((i % 97) + 1);
    return canvas.width ? sum : -1;
}"""
TRACES = "(id) => document.getElementById(id).data.map((trace) => [trace.name, trace.x.length])"


def shown(page) -> str:
    return page.locator("#compare-predictions").get_attribute("data-shown") or ""


def prediction_sums(page, run_id: int) -> list[int]:
    canvases = page.locator(f"#compare-samples canvas[data-run='{run_id}']")
    return [canvases.nth(i).evaluate(CANVAS_SUM) for i in range(canvases.count())]


def test_two_runs_compared_from_the_list(page, live_server, team_users, dataset, without_worker):
    # Given two finished runs, one slow and accurate, one fast
    slow = finished_run(dataset, team_users["alice"], "slow <b>", [0.9, 0.8, 0.3, 0.7, None], 5.0)
    fast = finished_run(dataset, team_users["alice"], "fast", [0.8, 0.6, 0.5, 0.4, None], 50.0, seed=1)

    # When alice ticks both in the list and presses "Compare selected"
    login(page, live_server, "alice")
    for run in (slow, fast):
        page.locator(f"#experiments tr[data-id='{run.pk}'] input[name=ids]").check()
    page.locator("#compare-selected").click()
    page.wait_for_url(f"{live_server.url}/experiments/compare/?ids={fast.pk}&ids={slow.pk}")  # the list's order

    # Then each chart has one curve per run, named after it
    wait_for(lambda: page.evaluate("() => Boolean(document.getElementById('compare-miou-chart').data)"), timeout=15,
             message="the curves")
    assert page.evaluate(TRACES, "compare-loss-chart") == [["fast", 6], ["slow &lt;b&gt;", 6]]
    assert page.locator("#compare-loss-chart .legendtext").all_text_contents() == ["fast", "slow <b>"]  # names as text
    assert page.evaluate(TRACES, "compare-miou-chart") == [["fast", 2], ["slow &lt;b&gt;", 2]]

    # The same samples side by side for both runs at the last shared step
    last = f"{EVALUATION_STEPS[-1]}:{','.join(SAMPLE_IDS)}"
    wait_for(lambda: shown(page) == last, timeout=15, message="the last step's samples")
    assert page.locator("#compare-samples [data-sample]").evaluate_all("rows => rows.map((r) => r.dataset.sample)") == \
        list(SAMPLE_IDS)
    assert page.locator("#compare-step-label").text_content() == f"step {EVALUATION_STEPS[-1]}"
    at_last = {run.pk: prediction_sums(page, run.pk) for run in (slow, fast)}
    assert all(len(sums) == len(SAMPLE_IDS) and -1 not in sums for sums in at_last.values())
    assert at_last[slow.pk] != at_last[fast.pk]  # each column is its own run's prediction

    # Moving the one step slider redraws every run's predictions at the first step
    page.locator("#compare-step").fill("0")
    wait_for(lambda: shown(page) == f"{EVALUATION_STEPS[0]}:{','.join(SAMPLE_IDS)}", timeout=15,
             message="the first step's samples")
    assert page.locator("#compare-step-label").text_content() == f"step {EVALUATION_STEPS[0]}"
    for run in (slow, fast):
        assert prediction_sums(page, run.pk) != at_last[run.pk]

    # The per-class table marks one best value in each row both runs have
    for row in ("background", "disc", "box", "triangle", "mIoU", "throughput (images/s)"):
        assert page.locator(f"#compare-classes tr[data-class='{row}'] td.best, "
                            f"#compare-classes tr[data-summary='{row}'] td.best").count() == 1, row
    box = page.locator("#compare-classes tr[data-class='box'] td.best")
    assert box.get_attribute("aria-label") == "50.0, best" and box.locator("strong").text_content() == "50.0"
    assert page.locator("#compare-classes tr[data-class='ring'] td.best").count() == 0

    # The scatter places both runs and connects its Pareto front
    page.locator("#compare-speed-chart .main-svg").first.wait_for()
    assert page.evaluate(TRACES, "compare-speed-chart") == [["runs", 2], ["Pareto front", 2]]
    page.watch.assert_clean()


def test_an_outsider_gets_404(page, live_server, team_users, dataset, without_worker):
    run = finished_run(dataset, team_users["alice"], "private", [0.5, 0.5, 0.5, 0.5, None], 10.0)

    login(page, live_server, "charlie")
    response = page.goto(f"{live_server.url}/experiments/compare/?ids={run.pk}")

    assert response.status == 404
    assert "private" not in page.content()


def test_the_curves_of_a_run_still_training_grow_without_a_reload(page, live_server, team_users, dataset,
                                                                   without_worker):
    from webapp.experiments.models import Experiment
    from workers.metric_writer import upsert_points

    # Given a finished run and one still training (fabricated: its points are written by the test)
    trained = finished_run(dataset, team_users["alice"], "trained", [0.9, 0.8, 0.3, 0.7, None], 5.0)
    training = finished_run(dataset, team_users["alice"], "training", [0.8, 0.6, 0.5, 0.4, None], 50.0, seed=1)
    Experiment.objects.filter(pk=training.pk).update(status="running", finished_at=None)
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/experiments/compare/?ids={trained.pk}&ids={training.pk}")
    wait_for(lambda: page.evaluate("() => Boolean(document.getElementById('compare-loss-chart').data)"), timeout=15,
             message="the curves")
    assert dict(page.evaluate(TRACES, "compare-loss-chart")) == {"trained": 6, "training": 6}

    # When the training run logs three more steps, its curve grows on the open page
    upsert_points(training.pk, {("loss", step): 0.1 for step in (7, 8, 9)})
    wait_for(lambda: dict(page.evaluate(TRACES, "compare-loss-chart")) == {"trained": 6, "training": 9},
             timeout=30, message="the new points")
    assert page.locator("#compare-live").is_hidden()

    # And when it ends, the page says so and offers a reload for the final tables
    Experiment.objects.filter(pk=training.pk).update(status="succeeded")
    page.locator("#compare-live", has_text="1 run finished since this page was opened").wait_for(timeout=30_000)
    page.watch.assert_clean()
