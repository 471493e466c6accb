"""A run's status changes through named transitions only, each with its event row."""
import pytest
from django.test import override_settings

from tests.conftest import TINY_RUN
from webapp.experiments import lifecycle
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import ExperimentEvent


@pytest.fixture
def launch(dataset, team_users):
    return lambda **config: launch_experiment(dataset, {**TINY_RUN, **config}, team_users["alice"])


def kinds(experiment):
    return list(experiment.events.values_list("kind", flat=True))


def test_every_event_kind_is_a_choice_and_every_transition_writes_one():
    choices = set(ExperimentEvent.Kind.values)
    assert {t.event for t in lifecycle.TRANSITIONS.values()} | {"queued"} <= choices


def test_a_claim_is_atomic_and_takes_each_run_once(launch):
    first, second = launch(), launch()
    assert lifecycle.claim_next("cpu", "w1").pk == first.pk
    assert lifecycle.claim_next("cpu", "w2").pk == second.pk
    assert lifecycle.claim_next("cpu", "w3") is None  # a duplicate message finds nothing to do
    first.refresh_from_db()
    assert (first.status, first.attempt, first.worker) == ("running", 1, "w1")


def test_an_old_attempt_cannot_overwrite_the_current_one(launch):
    experiment = launch()
    lifecycle.claim_next("cpu", "w1")
    lifecycle.crash(experiment.pk, 1, "worker lost")
    lifecycle.claim_next("cpu", "w2")
    assert lifecycle.succeed(experiment.pk, 1, "late") is None  # attempt 1 is fenced out
    assert lifecycle.beat(experiment.pk, 1) is None
    experiment.refresh_from_db()
    assert experiment.status == "running" and experiment.attempt == 2


@override_settings(SEGLAB_MAX_RESTARTS=2)
def test_a_run_that_keeps_crashing_is_failed_after_its_restarts(launch):
    experiment = launch()
    for attempt in (1, 2):
        lifecycle.claim_next("cpu", "w")
        assert lifecycle.crash(experiment.pk, attempt, "killed by SIGKILL").status == "queued"
    lifecycle.claim_next("cpu", "w")
    failed = lifecycle.crash(experiment.pk, 3, "killed by SIGKILL")
    assert failed.status == "failed" and "after 2 restarts" in failed.error
    assert kinds(failed) == ["queued", "started", "requeued", "started", "requeued", "started", "failed"]


def test_cancel_a_queued_run_at_once_and_a_running_one_by_request(launch):
    queued, running = launch(), launch()
    lifecycle.claim_next("cpu", "w")  # takes `queued`, the first in line
    running, queued = queued, running
    assert lifecycle.request_cancel(queued.pk).status == "cancelled"
    requested = lifecycle.request_cancel(running.pk)
    assert requested.status == "running" and requested.cancel_requested
    assert lifecycle.claim_next("cpu", "w") is None  # a cancelled run never trains


def test_retry_resumes_a_failed_run_and_refuses_a_running_one(launch):
    experiment = launch()
    lifecycle.claim_next("cpu", "w")
    with pytest.raises(lifecycle.TransitionRefused, match="only a failed or cancelled run"):
        lifecycle.retry(experiment.pk)
    lifecycle.fail(experiment.pk, "boom", attempt=1)
    retried = lifecycle.retry(experiment.pk)
    assert retried.status == "queued" and retried.error == "" and kinds(retried)[-1] == "retried"


def test_workers_take_runs_in_queue_order_and_members_can_reorder(launch):
    a, b, c = launch(), launch(), launch()
    lifecycle.move(c.pk, "top")
    lifecycle.move(a.pk, "down")
    assert lifecycle.queue_positions("cpu") == {c.pk: 1, b.pk: 2, a.pk: 3}
    assert [lifecycle.claim_next("cpu", "w").pk for _ in range(3)] == [c.pk, b.pk, a.pk]
    with pytest.raises(lifecycle.TransitionRefused, match="only a queued run"):
        lifecycle.move(a.pk, "up")


def test_nothing_but_the_lifecycle_writes_status():
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2]
    writers = []
    for path in [*root.joinpath("webapp").rglob("*.py"), *root.joinpath("workers").rglob("*.py")]:
        if path.name == "lifecycle.py" or "migrations" in path.parts:
            continue
        text = path.read_text()
        if re.search(r"\.status\s*=[^=]|(update|create)\([^)]*\bstatus=", text):
            writers.append(str(path.relative_to(root)))
    assert writers == []
