"""A run with gpus=2 through the worker's runner: two processes (gloo on the CPU), one database reporter."""
import pytest

from tests.conftest import TINY_RUN
from webapp.experiments import lifecycle
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import Evaluation, Experiment, MetricPoint
from workers import runner

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("without_worker")]


def claimed(dataset, user, **config):
    experiment = launch_experiment(dataset, {**TINY_RUN, **config}, user)
    assert lifecycle.claim_next(experiment.queue, "test-worker").pk == experiment.pk
    return Experiment.objects.select_related("dataset").get(pk=experiment.pk)


def recorded(experiment):
    points = MetricPoint.objects.filter(experiment=experiment).exclude(name__startswith="system_")
    return (sorted(points.values_list("name", "step")),
            list(Evaluation.objects.filter(experiment=experiment).order_by("step").values_list("step", flat=True)))


def test_a_two_gpu_run_records_what_a_one_gpu_run_does(dataset, team_users):
    one = claimed(dataset, team_users["alice"])
    assert runner.run(one, one.attempt) == "succeeded"
    two = claimed(dataset, team_users["alice"], gpus=2)

    assert runner.run(two, two.attempt) == "succeeded"

    two.refresh_from_db()
    assert two.status == "succeeded" and two.current_step == 6 and two.final_miou is not None
    assert two.device_name.startswith("2 x cpu") and two.config["gpus"] == 2
    assert recorded(two) == recorded(one)
    assert Evaluation.objects.filter(experiment=two).last().predictions
    assert two.checkpoint.endswith("last.pt") and (two.output_dir / "last.pt").is_file()
    assert [e.kind for e in two.events.all()] == ["queued", "started", "succeeded"]


def test_a_two_gpu_run_stopped_by_its_worker_resumes_from_its_checkpoint(dataset, team_users):
    experiment = claimed(dataset, team_users["alice"], gpus=2, iters=12, eval_every=4)
    stop_after = {"asked": 0}

    def interrupted():  # the worker shuts down after a few of rank 0's stop polls
        stop_after["asked"] += 1
        return stop_after["asked"] > 5

    assert runner.run(experiment, experiment.attempt, interrupted) == "interrupted"
    experiment.refresh_from_db()
    assert experiment.status == "queued" and (experiment.output_dir / "last.pt").is_file()
    stopped_at = experiment.current_step
    assert 0 < stopped_at < 12

    again = lifecycle.claim_next(experiment.queue, "test-worker")
    assert runner.run(Experiment.objects.select_related("dataset").get(pk=again.pk), again.attempt) == "succeeded"
    again.refresh_from_db()
    assert again.current_step == 12
    steps = list(MetricPoint.objects.filter(experiment=again, name="loss")
                 .values_list("step", flat=True).order_by("step"))
    assert steps == [2, 4, 6, 8, 10, 12]
