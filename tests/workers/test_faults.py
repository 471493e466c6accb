"""The job backend's guarantees, each on real worker processes, real Redis and PostgreSQL.

Each test crashes something on purpose (SIGKILL of the worker or of a run's process, an
emptied broker, a duplicate message, a run that ignores its cancel, a worker shut down
mid-run) and checks that the run still ends where it should, once, losing nothing but
the steps since its last checkpoint.
"""
import os
import signal
import time

import pytest

from tests.conftest import TINY_RUN, process_alive, wait_for
from webapp.experiments import lifecycle
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import Experiment, MetricPoint
from webapp.experiments.reconcile import reconcile

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def long_run(dataset, user, iters=400):
    """A CPU run with a point at every step and a checkpoint every quarter."""
    return launch_experiment(dataset, {**TINY_RUN, "iters": iters, "log_every": 1, "eval_every": iters // 4}, user)


def row(experiment):
    return Experiment.objects.get(pk=experiment.pk)


def running_at(experiment, step: int, timeout=120):
    return wait_for(lambda: (lambda r: r if r.status == "running" and r.current_step >= step and r.process_id
                             else None)(row(experiment)),
                    timeout=timeout, message=f"the run to pass step {step}")


def finished(experiment, timeout=180):
    return wait_for(lambda: (lambda r: r if r.is_finished else None)(row(experiment)), timeout=timeout,
                    message="the run to finish")


def loss_steps(experiment) -> list[int]:
    return list(MetricPoint.objects.filter(experiment=experiment, name="loss")
                .order_by("step").values_list("step", flat=True))


@pytest.fixture
def fast_reconciler(settings):
    settings.SEGLAB_HEARTBEAT_TIMEOUT = 4


def test_a_killed_worker_run_resumes_from_its_checkpoint_with_every_step_once(dataset, team_users, celery_worker,
                                                                            fast_reconciler):
    experiment = long_run(dataset, team_users["alice"])
    training = running_at(experiment, 110)  # past the checkpoint at step 100
    celery_worker.kill()
    wait_for(lambda: not process_alive(training.process_id), timeout=10,
             message="the run's process to die with its worker")
    killed_at = row(experiment).current_step

    celery_worker.start()
    wait_for(lambda: reconcile()["requeued"] or row(experiment).status != "running", timeout=30,
             message="the reconciler to notice the silent worker")
    resumed = wait_for(lambda: (lambda r: r if r.attempt == 2 and r.status == "running" else None)(row(experiment)),
                       timeout=60, message="the run to train again")
    done = finished(experiment)

    assert done.status == "succeeded", done.error
    assert loss_steps(experiment) == list(range(1, 401))  # none missing, none twice
    assert resumed.events.filter(kind="requeued", message__contains="stopped sending heartbeats").exists()
    started = resumed.events.filter(kind="started").last().message
    assert "from step" in started and killed_at >= 100
    assert done.crashes == 1 and done.attempt == 2
    sampled = set(MetricPoint.objects.filter(experiment=experiment, name__startswith="system/")
                  .values_list("name", flat=True))
    assert {"system/cpu_percent", "system/ram_mb", "system/images_per_second"} <= sampled
    assert MetricPoint.objects.filter(experiment=experiment, name="system/ram_mb", value__gt=50).exists()


def test_runs_queued_before_the_broker_lost_its_messages_still_run(dataset, team_users, celery_worker):
    from webapp.celery import app

    celery_worker.stop()
    runs = [launch_experiment(dataset, dict(TINY_RUN), team_users["alice"]) for _ in range(2)]
    with app.connection_for_write() as connection:
        connection.default_channel.client.flushdb()  # Redis restarted empty

    # The reconciler's pass, before any worker is back (a starting worker also announces
    # what it finds queued: test_runner.py's test of a starting worker).
    assert reconcile()["announced"] == ["cpu"]
    celery_worker.start()
    for experiment in runs:
        assert finished(experiment).status == "succeeded"


def test_a_duplicate_delivery_trains_once(dataset, team_users, celery_worker):
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    for _ in range(3):
        lifecycle.announce("cpu")  # as a visibility-timeout redelivery would

    done = finished(experiment)
    time.sleep(2)  # the extra messages have been taken by now

    assert done.status == "succeeded" and done.attempt == 1
    assert done.events.filter(kind="started").count() == 1


def test_a_run_whose_process_keeps_dying_is_failed_after_three_restarts(dataset, team_users, celery_worker):
    experiment = long_run(dataset, team_users["alice"], iters=3000)
    for attempt in range(1, 5):
        training = wait_for(lambda attempt=attempt: (lambda r: r if r.attempt == attempt and r.process_id else None)(
                                row(experiment)),
                            timeout=120, message=f"attempt {attempt} to start")
        os.kill(training.process_id, signal.SIGKILL)  # as the kernel's out-of-memory killer would
    done = finished(experiment, timeout=60)

    assert done.status == "failed"
    assert "killed by SIGKILL" in done.error and "after 3 restarts" in done.error
    assert done.events.filter(kind="requeued").count() == 3
    assert celery_worker.process.poll() is None  # the worker itself lived through it


def test_cancel_stops_a_running_run_within_ten_seconds_with_a_final_checkpoint(dataset, team_users, celery_worker):
    experiment = long_run(dataset, team_users["alice"], iters=3000)
    running_at(experiment, 5)

    asked = time.monotonic()
    lifecycle.request_cancel(experiment.pk)
    done = finished(experiment, timeout=30)

    assert done.status == "cancelled" and time.monotonic() - asked < 10
    assert (done.output_dir / "last.pt").is_file()
    assert loss_steps(experiment)[-1] >= done.current_step - 1  # the metrics were flushed


def test_a_run_that_ignores_its_cancel_is_killed_after_the_grace_period(dataset, team_users, celery_worker):
    experiment = long_run(dataset, team_users["alice"], iters=3000)
    training = running_at(experiment, 5)
    os.kill(training.process_id, signal.SIGSTOP)  # a run stuck in a kernel: deaf to SIGTERM and to the flag

    lifecycle.request_cancel(experiment.pk)
    done = finished(experiment, timeout=30)

    assert done.status == "cancelled" and "ignored the cancel" in done.events.last().message
    wait_for(lambda: not process_alive(training.process_id), timeout=10, message="the stuck process to be killed")


def test_a_worker_shut_down_mid_run_hands_it_back_and_it_resumes(dataset, team_users, celery_worker):
    experiment = long_run(dataset, team_users["alice"])
    running_at(experiment, 20)

    celery_worker.stop()
    stopped = row(experiment)
    assert stopped.status == "queued" and stopped.events.last().kind == "interrupted"
    assert stopped.crashes == 0
    celery_worker.start()
    done = finished(experiment)

    assert done.status == "succeeded" and done.attempt == 2
    assert loss_steps(experiment) == list(range(1, 401))
