"""`manage.py run_workers`: one supervised worker per GPU, or one CPU worker."""
import os
import signal
import subprocess
import sys

import pytest
from django.core.management.base import CommandError

from tests.conftest import ROOT, TINY_RUN, WORKER_TIMINGS, database_url_of_tests, die_with_parent, wait_for
from webapp.experiments.management.commands.run_workers import plan_workers


def test_one_worker_per_chosen_gpu_each_seeing_only_its_own():
    assert plan_workers("all", 2, "h") == [("gpu0@h", "gpu", "0"), ("gpu1@h", "gpu", "1")]
    assert plan_workers("1", 2, "h") == [("gpu1@h", "gpu", "1")]
    assert plan_workers("none", 0, "h") == [("cpu@h", "cpu", "")]


@pytest.mark.parametrize("gpus, available, message", [
    ("all", 0, "no NVIDIA GPU found"), ("0,2", 2, "GPU 2 does not exist; this host has 2"),
    ("0,0", 2, "name each GPU once"), ("first", 2, "expected all, none or GPU indices"), ("0", 0, "has no GPU"),
])
def test_impossible_choices_are_refused_in_words(gpus, available, message):
    with pytest.raises(CommandError, match=message):
        plan_workers(gpus, available, "h")


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_cpu_worker_started_by_the_command_trains_a_run(dataset, team_users, without_worker, media_root, tmp_path):
    from django.conf import settings

    from webapp.experiments.launch import launch_experiment
    from webapp.experiments.models import Experiment

    env = {**os.environ, **WORKER_TIMINGS, "MEDIA_ROOT": str(media_root), "REDIS_URL": settings.CELERY_BROKER_URL,
           "DATABASE_URL": database_url_of_tests()}
    log = open(tmp_path / "run_workers.log", "w")
    command = subprocess.Popen([sys.executable, "manage.py", "run_workers", "--gpus", "none"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    try:
        experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
        done = wait_for(lambda: (lambda r: r if r.is_finished else None)(Experiment.objects.get(pk=experiment.pk)),
                        timeout=180, message="the run to finish")
        assert done.status == "succeeded" and done.worker.startswith("cpu@")
    finally:
        command.send_signal(signal.SIGTERM)
        command.wait(timeout=60)
        log.close()
    assert "workers: cpu@" in (tmp_path / "run_workers.log").read_text()
