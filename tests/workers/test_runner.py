"""The worker's plain functions, without Celery: claim, run, fail, report."""
from tests.conftest import TINY_RUN
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import Evaluation, Experiment, MetricPoint
from workers import runner
from workers.reporter import DatabaseReporter


def test_claim_is_idempotent(dataset, team_users):
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    assert runner.claim(experiment.pk).status == "running"
    assert runner.claim(experiment.pk) is None  # a second delivery does nothing
    assert runner.claim(999999) is None


def test_run_trains_and_records_everything(dataset, team_users):
    experiment = runner.claim(launch_experiment(dataset, dict(TINY_RUN), team_users["alice"]).pk)
    runner.run(experiment)
    experiment.refresh_from_db()
    assert experiment.status == "succeeded" and experiment.current_step == 6
    assert experiment.final_miou is not None and 0 <= experiment.final_miou <= 1
    assert experiment.throughput > 0
    assert list(MetricPoint.objects.filter(experiment=experiment, name="loss").values_list("step", flat=True).order_by("step")) == [2, 4, 6]
    evaluations = Evaluation.objects.filter(experiment=experiment)
    assert [e.step for e in evaluations] == [3, 6]
    last = evaluations.last()
    assert len(last.confusion_matrix) == dataset.num_classes and last.predictions
    assert (experiment.output_dir / "last.pt").is_file()
    assert experiment.checkpoint.endswith("last.pt")


def test_failure_is_stored_on_the_row(dataset, team_users):
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    runner.mark_failed(experiment.pk, RuntimeError("CUDA out of memory at iteration 1,200 (batch 8, crop 512)"))
    experiment.refresh_from_db()
    assert experiment.status == "failed"
    assert experiment.error == "RuntimeError: CUDA out of memory at iteration 1,200 (batch 8, crop 512)"
    assert experiment.events.last().kind == "failed"


def test_reporter_writes_points_idempotently(dataset, team_users):
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    reporter = DatabaseReporter(experiment)
    reporter.log_metrics(2, {"loss": 1.0})
    reporter.log_metrics(2, {"loss": 0.5})  # a replay after resume overwrites, never duplicates
    reporter.flush()
    assert list(MetricPoint.objects.values_list("name", "step", "value")) == [("loss", 2, 0.5)]
    experiment.refresh_from_db()
    assert experiment.current_step == 2


def test_reporter_answers_cancellation(dataset, team_users):
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    reporter = DatabaseReporter(experiment)
    assert reporter.should_stop() is False
    Experiment.objects.filter(pk=experiment.pk).update(cancel_requested=True)
    reporter.last_poll = 0.0
    assert reporter.should_stop() is True


def test_an_interrupted_run_is_queued_again_and_resumes(dataset, team_users, django_capture_on_commit_callbacks):
    experiment = runner.claim(launch_experiment(dataset, {**TINY_RUN, "iters": 6}, team_users["alice"]).pk)
    stop_after = iter([False] * 4 + [True] * 100)
    with django_capture_on_commit_callbacks() as callbacks:
        runner.run(experiment, interrupted=lambda: next(stop_after))
    experiment.refresh_from_db()
    assert experiment.status == "queued"
    assert experiment.events.last().kind == "interrupted"
    assert len(callbacks) == 1  # sent to the broker again
    resumed = runner.claim(experiment.pk)
    runner.run(resumed)
    resumed.refresh_from_db()
    assert resumed.status == "succeeded" and resumed.current_step == 6
