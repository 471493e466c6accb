"""One attempt of a run in this process, without Celery: claim, train, record the outcome."""
import pytest

from tests.conftest import TINY_RUN
from webapp.experiments import lifecycle
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import Evaluation, Experiment, MetricPoint
from workers import runner
from workers.reporter import DatabaseReporter

# The reporter's writer thread has its own database connection: it sees committed rows only.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("without_worker")]


def claimed(dataset, user, **config):
    experiment = launch_experiment(dataset, {**TINY_RUN, **config}, user)
    assert lifecycle.claim_next(experiment.queue, "test-worker").pk == experiment.pk
    return Experiment.objects.select_related("dataset").get(pk=experiment.pk)


def test_run_trains_and_records_everything(dataset, team_users):
    experiment = claimed(dataset, team_users["alice"])

    assert runner.run(experiment, experiment.attempt) == "succeeded"

    experiment.refresh_from_db()
    assert experiment.status == "succeeded" and experiment.current_step == 6
    assert experiment.final_miou is not None and 0 <= experiment.final_miou <= 1
    assert experiment.throughput > 0 and experiment.device_name.startswith("cpu")
    assert list(MetricPoint.objects.filter(experiment=experiment, name="loss")
                .values_list("step", flat=True).order_by("step")) == [2, 4, 6]
    evaluations = Evaluation.objects.filter(experiment=experiment)
    assert [e.step for e in evaluations] == [3, 6]
    last = evaluations.last()
    assert len(last.confusion_matrix) == dataset.num_classes and last.predictions
    scores = list(last.image_scores.all())  # every validation image, whose pixels add up to the matrix's
    assert scores and sum(score.pixels for score in scores) == sum(map(sum, last.confusion_matrix))
    assert {sample["id"] for sample in last.predictions} <= {score.image_id for score in scores}
    assert (experiment.output_dir / "last.pt").is_file()
    assert experiment.checkpoint.endswith("last.pt")
    assert [e.kind for e in experiment.events.all()] == ["queued", "started", "succeeded"]
    recorded = experiment.environment
    assert recorded["torch"] and recorded["seed"] == 0 and recorded["seglab"] != "unknown"
    assert len(recorded["labeled_ids"]) == 10 and recorded["device"].startswith("cpu")  # 1/2 of 20 training images


def test_a_failure_is_stored_on_the_row_with_its_traceback(dataset, team_users):
    experiment = claimed(dataset, team_users["alice"])
    experiment.config["batch_size"] = 64  # a launch refuses it; a dataset edited since could still cause it

    assert runner.run(experiment, experiment.attempt) == "failed"

    experiment.refresh_from_db()
    assert experiment.status == "failed" and "batch_size 64 is larger than" in experiment.error
    assert "Traceback" in experiment.traceback and "TrainingError" in experiment.traceback
    assert experiment.events.last().kind == "failed"


def test_a_missing_dataset_folder_fails_with_a_clear_error(dataset, team_users):
    import shutil

    experiment = claimed(dataset, team_users["alice"])
    shutil.rmtree(dataset.path)

    assert runner.run(experiment, experiment.attempt) == "failed"
    experiment.refresh_from_db()
    assert experiment.status == "failed" and experiment.error.startswith("dataset problem")


def test_a_corrupt_checkpoint_fails_with_a_clear_error(dataset, team_users):
    experiment = claimed(dataset, team_users["alice"])
    experiment.output_dir.mkdir(parents=True, exist_ok=True)
    (experiment.output_dir / "last.pt").write_bytes(b"not a checkpoint")

    assert runner.run(experiment, experiment.attempt) == "failed"
    experiment.refresh_from_db()
    assert experiment.status == "failed"
    assert experiment.error.startswith("the checkpoint last.pt of this run cannot be read")


def test_cuda_out_of_memory_is_reported_with_the_batch_and_crop_that_caused_it(dataset, team_users):
    import torch

    experiment = claimed(dataset, team_users["alice"])
    Experiment.objects.filter(pk=experiment.pk).update(current_step=1200)
    message = runner.describe_error(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                    experiment)
    assert message == "CUDA out of memory at iteration 1,200 (batch 4, crop 32); lower batch_size or crop_size"


def test_reporter_writes_points_idempotently(dataset, team_users):
    experiment = claimed(dataset, team_users["alice"])
    reporter = DatabaseReporter(experiment, experiment.attempt)
    reporter.log_metrics(2, {"loss": 1.0})
    reporter.log_metrics(2, {"loss": 0.5})  # a replay after resume overwrites, never duplicates
    reporter.close()
    assert list(MetricPoint.objects.values_list("name", "step", "value")) == [("loss", 2, 0.5)]
    experiment.refresh_from_db()
    assert experiment.current_step == 2


def test_reporter_answers_cancellation_and_a_lost_attempt(dataset, team_users):
    experiment = claimed(dataset, team_users["alice"])
    reporter = DatabaseReporter(experiment, experiment.attempt)
    assert reporter.should_stop() is False
    lifecycle.request_cancel(experiment.pk)
    reporter.last_poll = 0.0
    assert reporter.should_stop() is True
    stale = DatabaseReporter(experiment, experiment.attempt - 1)  # an earlier attempt given up for dead
    assert stale.should_stop() is True


def test_an_interrupted_run_is_queued_again_and_resumes(dataset, team_users):
    from tests.conftest import purge_queues
    from webapp.experiments.reconcile import waiting_messages

    experiment = claimed(dataset, team_users["alice"])
    purge_queues()
    stop_after = iter([False] * 4 + [True] * 100)
    assert runner.run(experiment, experiment.attempt, interrupted=lambda: next(stop_after)) == "interrupted"
    experiment.refresh_from_db()
    assert experiment.status == "queued" and experiment.events.last().kind == "interrupted"
    assert experiment.crashes == 0  # a clean stop is not a crash
    assert waiting_messages("cpu") == 1  # announced to the broker again
    purge_queues()
    resumed = lifecycle.claim_next(experiment.queue, "test-worker")
    assert resumed.pk == experiment.pk and resumed.attempt == 2
    assert runner.run(Experiment.objects.select_related("dataset").get(pk=resumed.pk), resumed.attempt) == "succeeded"
    resumed.refresh_from_db()
    assert resumed.status == "succeeded" and resumed.current_step == 6


def test_metric_points_are_written_off_the_training_thread_and_flushed_on_demand(dataset, team_users):
    import threading

    experiment = claimed(dataset, team_users["alice"])
    reporter = DatabaseReporter(experiment, experiment.attempt)
    for step in range(1, 3001):  # 6,000 points: more than one batch
        reporter.log_metrics(step, {"loss": 1.0 / step, "lr": 0.1})
    assert reporter.writer.thread is not None and reporter.writer.thread is not threading.current_thread()
    reporter.flush()
    assert MetricPoint.objects.filter(experiment=experiment).count() == 6000
    experiment.refresh_from_db()
    assert experiment.current_step == 3000
    reporter.close()
    assert reporter.writer.thread is None


def test_a_failing_write_fails_the_run_instead_of_dropping_its_curves(dataset, team_users):
    import pytest as _pytest

    experiment = claimed(dataset, team_users["alice"])
    reporter = DatabaseReporter(experiment, experiment.attempt)
    reporter.log_metrics(1, {"loss": float("nan")})
    reporter.writer.experiment_id = 987654321  # no such experiment: the foreign key refuses the batch
    reporter.log_metrics(2, {"loss": 1.0})
    with _pytest.raises(RuntimeError, match="writing metric points failed"):
        reporter.flush()
    reporter.flush_quietly()


def test_a_starting_worker_announces_work_queued_while_no_message_waits(dataset, team_users, without_worker):
    """The message of a run re-queued by a worker's shutdown may stay with that worker until
    Redis's visibility timeout; the next worker to start must not wait for it."""
    from tests.conftest import purge_queues
    from webapp.experiments.reconcile import waiting_messages
    from workers.tasks import _look_for_waiting_work

    experiment = claimed(dataset, team_users["alice"])
    lifecycle.interrupt(experiment.pk, experiment.attempt, "the worker stopped")
    purge_queues()  # the broker lost the message (or a worker that shut down holds it)

    _look_for_waiting_work()
    _look_for_waiting_work()  # a message too many is not sent

    assert waiting_messages("cpu") == 1
    purge_queues()
