"""The sweeps API: a grid launched in one call, all or nothing; read back with its runs and its table."""
import statistics

import pytest

from tests.conftest import PASSWORD, TINY_RUN
from webapp.accounts.models import ApiToken
from webapp.experiments import lifecycle
from webapp.experiments.models import Experiment
from webapp.sweeps.models import Sweep

#: TINY_RUN without the label budget (the grid's) and with a batch every budget below can fill.
BASE = {**{key: value for key, value in TINY_RUN.items() if key != "labeled"}, "batch_size": 2}


def auth(user):
    return {"HTTP_AUTHORIZATION": f"Token {ApiToken.issue(user, 't')[1]}"}


def body(dataset, **changes):
    return {"dataset": dataset.pk, "name": "screening", "methods": ["supervised", "fixmatch"],
            "budgets": ["1/2", "1/4"], "seeds": [0, 1], "config": BASE, **changes}


def post(client, payload, user):
    return client.post("/api/v1/sweeps/", payload, content_type="application/json", **auth(user))


def test_one_call_queues_every_run_of_the_grid(client, dataset, team_users):
    response = post(client, body(dataset), team_users["alice"])

    assert response.status_code == 201, response.content
    created = response.json()
    sweep = Sweep.objects.get()
    assert created["id"] == sweep.pk and created["name"] == "screening" and created["dataset"] == dataset.pk
    assert created["methods"] == ["supervised", "fixmatch"] and created["archs"] == [] and created["config"] == BASE
    runs = list(Experiment.objects.order_by("pk"))
    assert created["experiments"] == [run.pk for run in runs] and len(runs) == 2 * 2 * 2
    assert all(run.status == "queued" and run.sweep == sweep and run.queue == "cpu" for run in runs)
    assert all(run.events.get().kind == "queued" for run in runs)
    assert [(run.config["seed"], run.config["labeled"], run.config["method"]) for run in runs[:3]] == [
        (0, "1/2", "supervised"), (0, "1/2", "fixmatch"), (0, "1/4", "supervised")]
    assert runs[0].name == "screening: unet supervised 1/2 (seed 0)"
    assert runs[0].config["model_options"]["base_width"] == 4 and "data" not in runs[0].config
    assert [run.position for run in runs] == sorted(run.position for run in runs)


def test_an_invalid_cell_stores_nothing_and_is_named(client, dataset, team_users):
    config = {**BASE, "method_options": {"confidence_threshold": 0.9}}  # fixmatch has it, supervised has not

    response = post(client, body(dataset, methods=["fixmatch", "supervised"], config=config), team_users["alice"])

    assert response.status_code == 400
    fields = response.json()["fields"]
    key = "run 2 (supervised, labels 1/2, seed 0): method_options.confidence_threshold"
    assert fields[key].startswith("unknown option") and "(also runs 4, 6, 8)" in fields[key]
    assert not Sweep.objects.exists() and not Experiment.objects.exists()


def test_a_budget_the_dataset_cannot_fill_stores_nothing_and_is_named(client, dataset, team_users):
    response = post(client, body(dataset, budgets=["1/2", "100"]), team_users["alice"])

    assert response.status_code == 400
    fields = response.json()["fields"]
    assert "asks for 100 labelled images but the training split has only" in (
        fields["run 3 (supervised, labels 100, seed 0): labeled"])
    assert not Sweep.objects.exists() and not Experiment.objects.exists()


@pytest.mark.parametrize("changes, field, message", [
    ({"seeds": [0, 0]}, "seeds", "0 is given twice"),
    ({"methods": []}, "methods", "This list may not be empty"),
    ({"methods": ["superviced"]}, "methods", "Unknown method `superviced`"),
    ({"config": {**BASE, "labeled": "1/8"}}, "labeled", "set by the grid's budgets"),
    ({"config": {**BASE, "data": "/etc"}}, "data", "set by the chosen dataset"),
    ({"seeds": list(range(126))}, "grid", "504 runs (2 methods x 2 budgets x 126 seeds) is more than the 500"),
])
def test_a_bad_grid_is_refused_naming_its_axis(client, dataset, team_users, changes, field, message):
    response = post(client, body(dataset, **changes), team_users["alice"])

    assert response.status_code == 400
    assert message in response.json()["fields"][field], response.json()
    assert not Experiment.objects.exists()


def test_a_sweep_name_is_unique_in_its_team(client, dataset, team_users):
    assert post(client, body(dataset, seeds=[0]), team_users["alice"]).status_code == 201

    again = post(client, body(dataset, seeds=[1]), team_users["alice"])

    assert again.status_code == 400 and "already has a sweep called 'screening'" in again.json()["fields"]["name"]
    assert Experiment.objects.count() == 4


def test_a_read_only_member_gets_403_and_nothing_is_stored(client, dataset, team_users):
    response = post(client, body(dataset), team_users["bob"])

    assert response.status_code == 403 and response.json() == {"error": "Your role in this team is read-only"}
    assert not Sweep.objects.exists() and not Experiment.objects.exists()


def test_an_outsider_cannot_see_or_use_the_teams_sweeps(client, dataset, team_users):
    sweep_id = post(client, body(dataset, seeds=[0]), team_users["alice"]).json()["id"]
    charlie = auth(team_users["charlie"])

    assert client.get(f"/api/v1/sweeps/{sweep_id}/", **charlie).status_code == 404
    assert client.get("/api/v1/sweeps/", **charlie).json()["results"] == []
    assert client.delete(f"/api/v1/sweeps/{sweep_id}/", **charlie).status_code == 404
    refused = post(client, body(dataset, name="theirs"), team_users["charlie"])
    assert refused.status_code == 400 and "does not exist" in refused.json()["fields"]["dataset"]
    assert client.get(f"/api/v1/experiments/?sweep={sweep_id}", **charlie).status_code == 400  # as an unknown id


def test_anonymous_requests_get_401(client, dataset, team_users):
    assert client.get("/api/v1/sweeps/").status_code == 401
    assert client.post("/api/v1/sweeps/", body(dataset), content_type="application/json").status_code == 401
    assert not Sweep.objects.exists()


def test_the_list_is_paginated_and_shows_each_sweeps_runs(client, dataset, team_users):
    client.login(username="alice", password=PASSWORD)
    first = client.post("/api/v1/sweeps/", body(dataset, name="a", seeds=[0]), content_type="application/json").json()
    second = client.post("/api/v1/sweeps/", body(dataset, name="b", seeds=[1]), content_type="application/json").json()

    page = client.get("/api/v1/sweeps/?limit=1").json()

    assert page["count"] == 2 and [s["id"] for s in page["results"]] == [second["id"]]
    assert page["results"][0]["experiments"] == second["experiments"] and len(first["experiments"]) == 4
    assert client.get("/api/v1/sweeps/", **auth(team_users["bob"])).json()["count"] == 2  # read-only members see them


def finish_next(final_miou):
    """A worker takes the next queued run and it succeeds with ``final_miou``."""
    run = lifecycle.claim_next("cpu", "w")
    lifecycle.succeed(run.pk, run.attempt, "done", final_miou=final_miou, best_miou=final_miou + 0.05)
    return run


def test_the_table_fills_in_as_runs_finish(client, dataset, team_users):
    client.login(username="alice", password=PASSWORD)
    created = client.post("/api/v1/sweeps/", body(dataset, budgets=["1/4", "1/2"]), content_type="application/json")
    url = f"/api/v1/sweeps/{created.json()['id']}/"

    empty = client.get(url).json()["table"]
    assert empty["score"] == "final_miou" and empty["budgets"] == ["1/4", "1/2"]
    assert [row["method"] for row in empty["rows"]] == ["supervised", "fixmatch"]
    assert all(cell == {"budget": cell["budget"], "mean": None, "sd": None, "n": 0}
               for row in empty["rows"] for cell in row["cells"])

    finish_next(0.3)  # supervised 1/4 seed 0
    finish_next(0.5)  # fixmatch 1/4 seed 0
    lifecycle.claim_next("cpu", "w")  # supervised 1/2 seed 0: running, not counted
    lifecycle.fail(lifecycle.claim_next("cpu", "w").pk, "boom")  # fixmatch 1/2 seed 0: failed, not counted
    finish_next(0.4)  # supervised 1/4 seed 1

    detail = client.get(url).json()
    rows = {row["method"]: row["cells"] for row in detail["table"]["rows"]}
    supervised_quarter = rows["supervised"][0]
    assert supervised_quarter["n"] == 2 and supervised_quarter["mean"] == pytest.approx(0.35)
    assert supervised_quarter["sd"] == pytest.approx(statistics.stdev([0.3, 0.4]))
    assert rows["fixmatch"][0] == {"budget": "1/4", "mean": 0.5, "sd": None, "n": 1}
    assert rows["supervised"][1]["n"] == rows["fixmatch"][1]["n"] == 0
    runs = detail["runs"]
    assert len(runs) == 8 and runs[0]["id"] == detail["experiments"][0]
    assert {key: runs[0][key] for key in ("method", "budget", "seed", "arch", "status", "final_miou")} == {
        "method": "supervised", "budget": "1/4", "seed": 0, "arch": "unet", "status": "succeeded", "final_miou": 0.3}
    assert runs[0]["best_miou"] == pytest.approx(0.35) and runs[0]["progress"] == 0.0
    assert [run["status"] for run in runs[2:5]] == ["running", "failed", "succeeded"]


def test_a_method_spec_and_an_architecture_axis_label_the_rows(client, dataset, team_users):
    client.login(username="alice", password=PASSWORD)
    config = {key: value for key, value in BASE.items() if key not in ("arch", "model_options")}
    created = client.post("/api/v1/sweeps/", body(dataset, methods=["fixmatch", "fixmatch:threshold_mode=distribution"],
                                                  budgets=["1/2"], seeds=[0], archs=["unet", "segformer_b0"],
                                                  config=config), content_type="application/json")
    assert created.status_code == 201, created.content

    detail = client.get(f"/api/v1/sweeps/{created.json()['id']}/").json()

    assert [(row["arch"], row["method"]) for row in detail["table"]["rows"]] == [
        ("unet", "fixmatch"), ("unet", "fixmatch:threshold_mode=distribution"),
        ("segformer_b0", "fixmatch"), ("segformer_b0", "fixmatch:threshold_mode=distribution")]
    second = detail["runs"][1]
    assert (second["arch"], second["method"]) == ("unet", "fixmatch:threshold_mode=distribution")


def test_the_experiments_list_filters_by_sweep(client, dataset, team_users):
    from webapp.experiments.launch import launch_experiment

    headers = auth(team_users["alice"])
    sweep = post(client, body(dataset, seeds=[0]), team_users["alice"]).json()
    post(client, body(dataset, name="other", seeds=[1]), team_users["alice"])
    launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])

    listed = client.get(f"/api/v1/experiments/?sweep={sweep['id']}&ordering=position", **headers).json()["results"]

    assert [run["id"] for run in listed] == sweep["experiments"]
    assert all(run["sweep"] == sweep["id"] for run in listed)
    assert client.get("/api/v1/experiments/?sweep=999999", **headers).status_code == 400


def test_deleting_a_sweep_keeps_its_runs(client, dataset, team_users):
    sweep = post(client, body(dataset, seeds=[0]), team_users["alice"]).json()

    assert client.delete(f"/api/v1/sweeps/{sweep['id']}/", **auth(team_users["bob"])).status_code == 403
    assert client.delete(f"/api/v1/sweeps/{sweep['id']}/", **auth(team_users["alice"])).status_code == 204

    assert not Sweep.objects.exists()
    assert list(Experiment.objects.values_list("sweep", flat=True)) == [None] * 4
