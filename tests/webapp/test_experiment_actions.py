"""Retry, clone and queue moves from the page and the API, each checking who is asking."""
import pytest

from tests.conftest import PASSWORD, TINY_RUN
from webapp.experiments import lifecycle
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import Experiment


@pytest.fixture
def launch(dataset, team_users):
    return lambda **config: launch_experiment(dataset, {**TINY_RUN, **config}, team_users["alice"])


def failed(launch):
    experiment = launch()
    lifecycle.claim_next("cpu", "w")
    return lifecycle.fail(experiment.pk, "boom", attempt=1)


def test_retry_from_the_page_and_the_api(client, launch):
    experiment = failed(launch)
    client.login(username="alice", password=PASSWORD)
    page = client.get(f"/experiments/{experiment.pk}/").content.decode()
    assert 'id="retry-form"' in page and 'id="clone-link"' in page

    assert client.post(f"/experiments/{experiment.pk}/retry/").status_code == 302
    assert Experiment.objects.get(pk=experiment.pk).status == "queued"
    refused = client.post(f"/api/v1/experiments/{experiment.pk}/retry/")
    assert refused.status_code == 400 and "only a failed or cancelled run" in refused.json()["fields"]["status"]


def test_clone_keeps_the_config_and_takes_changes(client, launch):
    source = launch(seed=3)
    client.login(username="alice", password=PASSWORD)

    form = client.get(f"/experiments/new/?clone={source.pk}")
    assert form.context["form"]["seed"].value() == 3
    assert "(clone)" in form.context["form"]["name"].value()
    response = client.post(f"/api/v1/experiments/{source.pk}/clone/", {"config": {"seed": 4}},
                           content_type="application/json")

    assert response.status_code == 201
    clone = Experiment.objects.get(pk=response.json()["id"])
    assert clone.config == {**source.config, "seed": 4} and clone.status == "queued"


def test_move_in_the_queue_shows_the_position(client, launch):
    first, second = launch(), launch()
    client.login(username="alice", password=PASSWORD)
    assert 'id="queue-position">2<' in client.get(f"/experiments/{second.pk}/").content.decode()

    client.post(f"/experiments/{second.pk}/move/", {"where": "top"})

    assert 'id="queue-position">1<' in client.get(f"/experiments/{second.pk}/").content.decode()
    api = client.post(f"/api/v1/experiments/{first.pk}/move/", {"where": "sideways"}, content_type="application/json")
    assert api.status_code == 400 and "where" in api.json()["fields"]


@pytest.mark.parametrize("user, status", [("bob", 403), ("charlie", 404)])
def test_read_only_members_and_outsiders_cannot_retry_clone_or_move(client, launch, user, status):
    experiment = failed(launch)
    client.login(username=user, password=PASSWORD)
    for action in ("retry", "move"):
        assert client.post(f"/experiments/{experiment.pk}/{action}/", {"where": "top"}).status_code == status
    for action in ("retry", "clone", "move"):
        assert client.post(f"/api/v1/experiments/{experiment.pk}/{action}/", {"where": "top"},
                           content_type="application/json").status_code == status
    assert Experiment.objects.count() == 1 and Experiment.objects.get().status == "failed"
