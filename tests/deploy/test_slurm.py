"""deploy/slurm/seglab-worker.sbatch on a real one-node SLURM cluster (tests/deploy/conftest.py):
the worker it starts inside the allocation claims a queued run and trains it."""
from __future__ import annotations

import pytest

from tests.conftest import ROOT, TINY_RUN, database_url_of_tests, wait_for
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import Experiment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BATCH_SCRIPT = ROOT / "deploy" / "slurm" / "seglab-worker.sbatch"


def test_a_worker_started_by_sbatch_trains_a_queued_run(slurm_cluster, without_worker, dataset, team_users,
                                                      media_root, tmp_path):
    from django.conf import settings

    # Given a queued CPU run, and no other worker that could take it first (without_worker)
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    database_url = database_url_of_tests()

    # When the batch script is submitted; the secret travels in sbatch's environment, not its
    # command line, and --time bounds a job that a killed pytest would leave behind
    submitted = slurm_cluster.run(
        "sbatch", "--parsable", "--gres=none", "--time=10", f"--output={tmp_path / 'slurm-%j.out'}",
        f"--export=ALL,DATABASE_URL={database_url},REDIS_URL={settings.CELERY_BROKER_URL},MEDIA_ROOT={media_root},"
        f"SEGLAB_DIR={ROOT},SEGLAB_QUEUES=cpu,SEGLAB_HEARTBEAT_SECONDS=0.5,OMP_NUM_THREADS=1",
        str(BATCH_SCRIPT), env={"SECRET_KEY": settings.SECRET_KEY},
    )
    job_id = submitted.stdout.strip().split(";")[0]
    job_output = tmp_path / f"slurm-{job_id}.out"

    def finished():
        experiment.refresh_from_db()
        return experiment.status in Experiment.FINISHED

    try:
        wait_for(finished, timeout=240, message="the run to finish on the SLURM worker")
    except AssertionError as error:
        raise AssertionError(f"{error}\n--- job output\n{read(job_output)}\n{slurm_cluster.logs()}") from None

    # Then the SLURM job's worker trained it, and scancel ends the job
    assert experiment.status == Experiment.Status.SUCCEEDED, f"{experiment.error}\n{read(job_output)}"
    assert experiment.worker.startswith(f"slurm-{job_id}@"), experiment.worker
    slurm_cluster.run("scancel", job_id)
    wait_for(lambda: job_id not in slurm_cluster.jobs(), timeout=60, message=f"job {job_id} to leave squeue")
    assert "warm shutdown" in read(job_output).lower()


def read(path) -> str:
    return path.read_text(errors="replace")[-4000:] if path.exists() else "(no output)"
