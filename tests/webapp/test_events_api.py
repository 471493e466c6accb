"""The events endpoint the experiment page polls: lifecycle events after an id, and the run's state."""
import pytest

from tests.conftest import PASSWORD, TINY_RUN
from webapp.experiments import lifecycle
from webapp.experiments.launch import launch_experiment


@pytest.fixture
def experiment(dataset, team_users):
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    lifecycle.claim_next(experiment.queue, "worker-7@host")
    return experiment


def url(experiment) -> str:
    return f"/api/v1/experiments/{experiment.pk}/events/"


def test_events_after_an_id_and_the_run_state(client, experiment):
    # Given a run that was queued and then claimed by a worker
    client.login(username="alice", password=PASSWORD)

    # When the page asks for every event
    body = client.get(url(experiment)).json()

    # Then it gets them oldest first, with the run's state now
    assert [event["kind"] for event in body["events"]] == ["queued", "started"]
    assert body["events"][1]["kind_display"] == "Started"
    assert body["last_event"] == body["events"][-1]["id"]
    run = body["run"]
    assert run["status"] == "running" and run["worker"] == "worker-7@host" and run["attempt"] == 1
    assert run["checkpoints"] == {"best": False, "last": False}
    assert {"heartbeat_at", "eta_seconds", "error", "traceback", "log_tail"} <= set(run)

    # And asking again after the last id gives only what happened since
    assert client.get(url(experiment), {"after": body["last_event"]}).json()["events"] == []
    lifecycle.fail(experiment.pk, "CUDA out of memory at iteration 3", attempt=1, traceback="Traceback ...")
    later = client.get(url(experiment), {"after": body["last_event"]}).json()
    assert [event["kind"] for event in later["events"]] == ["failed"]
    assert later["run"]["error"] == "CUDA out of memory at iteration 3"
    assert later["run"]["traceback"] == "Traceback ..."


def test_a_checkpoint_on_disk_is_announced(client, experiment):
    experiment.output_dir.mkdir(parents=True, exist_ok=True)
    (experiment.output_dir / "last.pt").write_bytes(b"state")
    client.login(username="alice", password=PASSWORD)
    assert client.get(url(experiment)).json()["run"]["checkpoints"] == {"best": False, "last": True}


def test_a_bad_after_is_a_400_naming_the_field(client, experiment):
    client.login(username="alice", password=PASSWORD)
    response = client.get(url(experiment), {"after": "soon"})
    assert response.status_code == 400
    assert response.json()["fields"]["after"].startswith("expected a whole number")


def test_another_team_gets_404(client, experiment):
    client.login(username="charlie", password=PASSWORD)
    assert client.get(url(experiment)).status_code == 404


def test_anonymous_gets_401(client, experiment):
    response = client.get(url(experiment))
    assert response.status_code == 401
    assert "error" in response.json()
