"""The incremental metrics endpoint the live page polls."""
import pytest

from tests.conftest import PASSWORD, TINY_RUN
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import MetricPoint


@pytest.fixture
def experiment(dataset, team_users):
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    MetricPoint.objects.bulk_create(
        [MetricPoint(experiment=experiment, name="loss", step=s, value=1.0 / s) for s in range(1, 11)]
        + [MetricPoint(experiment=experiment, name="val_miou", step=s, value=s / 10) for s in (5, 10)]
    )
    return experiment


def test_after_step_returns_only_new_points(client, experiment):
    client.login(username="alice", password=PASSWORD)
    url = f"/api/v1/experiments/{experiment.pk}/metrics/"
    body = client.get(url, {"after_step": 7}).json()
    assert body["metrics"]["loss"]["steps"] == [8, 9, 10]
    assert body["metrics"]["val_miou"] == {"steps": [10], "values": [1.0]}
    assert body["last_step"] == 10
    assert client.get(url, {"after_step": 10}).json()["metrics"] == {}


def test_names_filter(client, experiment):
    client.login(username="alice", password=PASSWORD)
    body = client.get(f"/api/v1/experiments/{experiment.pk}/metrics/", {"names": "val_miou"}).json()
    assert list(body["metrics"]) == ["val_miou"]


def test_bad_after_step_is_a_400_naming_the_field(client, experiment):
    client.login(username="alice", password=PASSWORD)
    response = client.get(f"/api/v1/experiments/{experiment.pk}/metrics/", {"after_step": "x"})
    assert response.status_code == 400
    assert response.json()["fields"]["after_step"].startswith("expected a whole number")


def store(experiment, name, values):
    from workers.metric_writer import upsert_points

    upsert_points(experiment.pk, {(name, step): value for step, value in values})


def test_a_downsampled_series_keeps_its_spikes_and_its_bounds(client, experiment):
    values = [(step, 1.0) for step in range(1, 10_001)]
    values[4321] = (4322, 50.0)  # one spike among ten thousand points
    values[7000] = (7001, -3.0)
    store(experiment, "spiky", values)
    client.login(username="alice", password=PASSWORD)

    body = client.get(f"/api/v1/experiments/{experiment.pk}/metrics/?names=spiky&max_points=200").json()
    series = body["metrics"]["spiky"]

    assert 150 <= len(series["steps"]) <= 200 and series["steps"] == sorted(series["steps"])
    assert series["steps"][0] == 1 and series["steps"][-1] == 10_000  # the whole run, to its last step
    assert (4322, 50.0) in zip(series["steps"], series["values"], strict=True) and -3.0 in series["values"]
    window = client.get(f"/api/v1/experiments/{experiment.pk}/metrics/"
                        "?names=spiky&max_points=50&from_step=100&to_step=199")
    steps = window.json()["metrics"]["spiky"]["steps"]
    assert 100 <= min(steps) and max(steps) <= 199


@pytest.mark.parametrize("query, field", [("max_points=1", "max_points"), ("max_points=x", "max_points"),
                                          ("max_points=10&from_step=9&to_step=3", "from_step")])
def test_downsampling_parameters_are_checked(client, experiment, query, field):
    client.login(username="alice", password=PASSWORD)
    response = client.get(f"/api/v1/experiments/{experiment.pk}/metrics/?{query}")
    assert response.status_code == 400 and field in response.json()["fields"]


def test_a_diverged_loss_is_null_in_json_not_a_500(client, experiment):
    store(experiment, "diverged", [(1, 0.5), (2, float("nan")), (3, float("inf"))])
    client.login(username="alice", password=PASSWORD)
    for query in ("", "&max_points=10"):
        response = client.get(f"/api/v1/experiments/{experiment.pk}/metrics/?names=diverged{query}")
        assert response.status_code == 200
        assert response.json()["metrics"]["diverged"]["values"][0] == 0.5
        assert None in response.json()["metrics"]["diverged"]["values"]


def test_the_csv_export_streams_every_point(client, experiment):
    store(experiment, "exported", [(step, step / 10) for step in range(1, 7001)])

    client.login(username="alice", password=PASSWORD)

    response = client.get(f"/api/v1/experiments/{experiment.pk}/metrics-csv/?names=exported")

    assert response["Content-Type"] == "text/csv" and response.streaming
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0] == "name,step,value" and len(lines) == 7001 and lines[1] == "exported,1,0.1"


def test_checkpoints_download_for_the_team_only(client, experiment):
    experiment.output_dir.mkdir(parents=True, exist_ok=True)
    (experiment.output_dir / "best.pt").write_bytes(b"weights")
    client.login(username="alice", password=PASSWORD)
    response = client.get(f"/api/v1/experiments/{experiment.pk}/checkpoint/")
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"weights"
    assert f"experiment-{experiment.pk}-best.pt" in response["Content-Disposition"]
    missing = client.get(f"/api/v1/experiments/{experiment.pk}/checkpoint/?which=last")
    assert missing.status_code == 404 and "no last.pt yet" in missing.json()["error"]
    client.logout()
    client.login(username="charlie", password=PASSWORD)
    assert client.get(f"/api/v1/experiments/{experiment.pk}/checkpoint/").status_code == 404
    assert client.get(f"/api/v1/experiments/{experiment.pk}/metrics-csv/").status_code == 404


def test_a_long_run_is_downsampled_from_block_summaries_that_follow_rewrites(client, experiment):
    from webapp.experiments.series import SUMMARY_MIN_SPAN

    values = [(step, 1.0 + (step % 7) / 100) for step in range(1, 60_001)]
    values[31_336] = (31_337, 50.0)
    store(experiment, "long", values)
    client.login(username="alice", password=PASSWORD)
    url = f"/api/v1/experiments/{experiment.pk}/metrics/?names=long&max_points=20"
    assert 60_000 // 10 >= SUMMARY_MIN_SPAN  # this view reads the summaries

    series = client.get(url).json()["metrics"]["long"]
    assert (31_337, 50.0) in zip(series["steps"], series["values"], strict=True) and len(series["steps"]) <= 20
    store(experiment, "long", [(31_337, 1.0)])  # a resumed run logs the step again, without the spike
    assert 50.0 not in client.get(url).json()["metrics"]["long"]["values"]

    window = client.get(url + "&from_step=100&to_step=59900").json()["metrics"]["long"]["steps"]
    assert min(window) >= 100 and max(window) <= 59_900
