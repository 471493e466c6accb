"""The compare page: the Pareto front, the runs it accepts, who may compare, and what it shows."""
import json
import re

import pytest

from tests.conftest import TINY_RUN
from tests.finished_runs import EVALUATION_STEPS, SAMPLE_IDS, finished_run
from webapp.experiments.compare import MAX_RUNS, SpeedPoint, best_columns, pareto_front

COMPARE = "/experiments/compare/"


def front_ids(*points):
    return [point.run_id for point in pareto_front([SpeedPoint(*point) for point in points])]


# -- pareto_front ---------------------------------------------------------------------------

def test_one_run_is_its_own_front():
    assert front_ids((1, 10.0, 0.5)) == [1]


def test_no_runs_no_front():
    assert pareto_front([]) == []


def test_a_run_beaten_on_speed_and_miou_is_off_the_front():
    assert front_ids((1, 10.0, 0.5), (2, 20.0, 0.6), (3, 5.0, 0.7)) == [3, 2]


def test_the_front_runs_from_slow_and_accurate_to_fast():
    assert front_ids((1, 30.0, 0.4), (2, 10.0, 0.8), (3, 20.0, 0.6), (4, 15.0, 0.5)) == [2, 3, 1]


def test_of_two_equally_fast_runs_only_the_more_accurate_is_on_the_front():
    assert front_ids((1, 10.0, 0.5), (2, 10.0, 0.6)) == [2]


def test_of_two_equally_accurate_runs_only_the_faster_is_on_the_front():
    assert front_ids((1, 10.0, 0.6), (2, 12.0, 0.6)) == [2]


def test_identical_runs_both_stay_on_the_front():
    assert front_ids((1, 10.0, 0.6), (2, 10.0, 0.6), (3, 5.0, 0.5)) == [1, 2]


def test_every_tie_for_the_best_value_is_marked():
    assert best_columns([0.5, None, 0.7, 0.7]) == {2, 3}
    assert best_columns([None, None]) == set()


# -- the page ---------------------------------------------------------------------------------

@pytest.fixture
def runs(dataset, team_users):
    """Two finished runs: a slow accurate one and a fast one that is better only on "box"."""
    slow = finished_run(dataset, team_users["alice"], "slow <b>accurate</b>", [0.9, 0.8, 0.3, 0.7, None], 5.0)
    fast = finished_run(dataset, team_users["alice"], "fast", [0.8, 0.6, 0.5, 0.4, None], 50.0, seed=1)
    return slow, fast


def page_data(response) -> dict:
    match = re.search(r'<script id="compare-data" type="application/json">(.*?)</script>', response.content.decode())
    return json.loads(match.group(1))


def cells(response, row: str) -> list[str]:
    html = response.content.decode()
    line = re.search(rf'<tr data-(?:class|summary)="{re.escape(row)}">(.*?)</tr>', html, flags=re.S).group(1)
    return re.findall(r"<td[^>]*>(.*?)</td>", line, flags=re.S)


@pytest.mark.django_db(transaction=True)
def test_the_page_shows_both_runs_side_by_side(client, runs, team_users, without_worker):
    slow, fast = runs
    client.force_login(team_users["alice"])

    response = client.get(f"{COMPARE}?ids={slow.pk},{fast.pk}")

    assert response.status_code == 200
    data = page_data(response)
    assert [run["name"] for run in data["runs"]] == [slow.name, fast.name]
    assert data["steps"] == [{"step": step, "ids": list(SAMPLE_IDS)} for step in EVALUATION_STEPS]
    assert {point["id"] for point in data["speed"]["points"]} == {slow.pk, fast.pk}
    assert data["speed"]["front"] == [slow.pk, fast.pk]  # neither beats the other on both
    assert cells(response, "disc") == ['<strong>80.0</strong> <span class="best-mark">best</span>', "60.0"]
    assert cells(response, "box") == ["30.0", '<strong>50.0</strong> <span class="best-mark">best</span>']
    assert 'aria-label="50.0, best"' in response.content.decode()
    assert cells(response, "ring") == ["—", "—"]  # absent from both: nothing is best
    assert cells(response, "throughput (images/s)")[1].startswith("<strong>50.0</strong>")
    assert "slow &lt;b&gt;accurate&lt;/b&gt;" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_list_offers_to_compare_its_rows(client, runs, team_users, without_worker):
    client.force_login(team_users["alice"])

    html = client.get("/experiments/").content.decode()

    assert 'action="/experiments/compare/"' in html
    for run in runs:
        assert f'name="ids" value="{run.pk}" form="compare-form"' in html
    # the form sends ids=1&ids=2: accepted as well as ids=1,2
    assert client.get(COMPARE, {"ids": [str(run.pk) for run in runs]}).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_read_only_member_can_compare(client, runs, team_users, without_worker):
    client.force_login(team_users["bob"])

    response = client.get(f"{COMPARE}?ids={runs[0].pk},{runs[1].pk}")

    assert response.status_code == 200
    assert len(page_data(response)["runs"]) == 2


@pytest.mark.django_db(transaction=True)
def test_another_teams_run_is_a_404(client, runs, team_users, without_worker):
    client.force_login(team_users["charlie"])

    assert client.get(f"{COMPARE}?ids={runs[0].pk}").status_code == 404
    assert client.get(f"{COMPARE}?ids={runs[0].pk},{runs[1].pk}").status_code == 404


def test_a_run_of_another_team_among_ones_own_is_a_404(client, dataset, team_users):
    from webapp.experiments.launch import launch_experiment

    own = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    client.force_login(team_users["charlie"])
    assert client.get(f"{COMPARE}?ids={own.pk}").status_code == 404
    client.force_login(team_users["alice"])
    assert client.get(f"{COMPARE}?ids={own.pk},{own.pk + 1000}").status_code == 404


@pytest.mark.parametrize("query, message", [
    ("", "ids: pick the runs to compare"),
    ("?ids=", "ids: pick the runs to compare"),
    ("?ids=1,two", "expected run ids (whole numbers) separated by commas, got &#x27;two&#x27;"),
    ("?ids=-1", "expected run ids (whole numbers)"),
    ("?ids=" + ",".join(str(n) for n in range(1, MAX_RUNS + 2)), f"at most {MAX_RUNS} runs can be compared at once, "
                                                                  f"got {MAX_RUNS + 1}"),
    ("?ids=1&sweep=1", "give either ids or sweep, not both"),
    ("?sweep=x", "sweep: expected a sweep id"),
])
def test_bad_ids_get_a_message_not_a_500(client, team_users, query, message):
    client.force_login(team_users["alice"])

    response = client.get(f"{COMPARE}{query}")

    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'id="compare-error"' in response.content.decode()


def test_anonymous_users_are_sent_to_log_in(client, team_users):
    response = client.get(f"{COMPARE}?ids=1")
    assert response.status_code == 302 and response.url.startswith("/login/")


@pytest.mark.django_db(transaction=True)
def test_a_sweeps_comparison_shows_its_runs_and_its_table(client, dataset, team_users, without_worker):
    from webapp.sweeps.services import launch_sweep

    base = {k: v for k, v in TINY_RUN.items() if k != "labeled"}
    sweep = launch_sweep(dataset, {"methods": ["supervised", "cps"], "budgets": ["1/2"], "seeds": [0], "config": base},
                         team_users["alice"], "grid")
    client.force_login(team_users["bob"])

    response = client.get(f"{COMPARE}?sweep={sweep.pk}")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="sweep-table"' in html and 'id="sweep-plot"' in html and "seglab/sweep_table.js" in html
    assert [run["id"] for run in page_data(response)["runs"]] == list(sweep.experiments.order_by("pk")
                                                                      .values_list("pk", flat=True))
    assert f'href="/experiments/compare/?sweep={sweep.pk}"' in client.get(f"/sweeps/{sweep.pk}/").content.decode()
    client.force_login(team_users["charlie"])
    assert client.get(f"{COMPARE}?sweep={sweep.pk}").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_sweep_of_more_than_the_maximum_compares_its_best_runs(client, dataset, team_users, without_worker):
    from webapp.experiments.models import Experiment
    from webapp.sweeps.services import launch_sweep

    base = {k: v for k, v in TINY_RUN.items() if k != "labeled"}
    sweep = launch_sweep(dataset, {"methods": ["supervised"], "budgets": ["1/2"], "seeds": list(range(MAX_RUNS + 2)),
                                   "config": base}, team_users["alice"], "many seeds")
    ids = list(sweep.experiments.order_by("pk").values_list("pk", flat=True))
    for rank, pk in enumerate(ids):
        Experiment.objects.filter(pk=pk).update(final_miou=rank / 100)
    client.force_login(team_users["alice"])

    response = client.get(f"{COMPARE}?sweep={sweep.pk}")

    assert response.status_code == 200
    assert [run["id"] for run in page_data(response)["runs"]] == ids[2:]  # the two lowest left out
    assert (f"This sweep has {MAX_RUNS + 2} runs; the {MAX_RUNS} with the highest final mIoU"
            in response.content.decode())
