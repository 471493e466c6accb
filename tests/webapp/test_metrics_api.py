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
