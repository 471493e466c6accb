"""Cross-dataset evaluations on a real worker process: a tiny run trains, then its best checkpoint is
evaluated on a second dataset with the same classes; and the rules that keep a crashed one from staying
"running"."""
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from PIL import Image

from tests.conftest import TINY_RUN, wait_for
from tests.webapp.test_transfer_evaluations import other_dataset, renamed
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import Experiment
from webapp.transfer import lifecycle
from webapp.transfer.models import TransferEvaluation
from webapp.transfer.services import request_transfer

pytestmark = pytest.mark.django_db(transaction=True)


def trained(dataset, user) -> Experiment:
    experiment = launch_experiment(dataset, dict(TINY_RUN), user)
    wait_for(lambda: Experiment.objects.get(pk=experiment.pk).is_finished, timeout=180, message="the run to finish")
    experiment.refresh_from_db()
    assert experiment.status == "succeeded", experiment.error
    return experiment


def test_a_worker_evaluates_the_best_checkpoint_on_a_dataset_with_the_same_classes(
        dataset, team_users, demo_folder, tmp_path, celery_worker):
    experiment = trained(dataset, team_users["alice"])
    target = other_dataset(team_users["team"], team_users["alice"], demo_folder, tmp_path, "shapes-again")
    mismatched = other_dataset(team_users["team"], team_users["alice"], demo_folder, tmp_path, "renamed", renamed)

    with pytest.raises(ValidationError) as refused:
        request_transfer(experiment, mismatched, team_users["alice"])
    assert "class 2 is 'crate' here but 'box' in the run's dataset" in refused.value.message_dict["dataset"][0]
    assert "class 5 'star' here is not in the run's dataset" in refused.value.message_dict["dataset"][0]
    evaluation = request_transfer(experiment, target, team_users["alice"])

    wait_for(lambda: TransferEvaluation.objects.get(pk=evaluation.pk).status in ("succeeded", "failed"), timeout=120,
             message="the evaluation to finish")
    evaluation.refresh_from_db()
    assert evaluation.status == "succeeded", evaluation.error
    assert TransferEvaluation.objects.count() == 1  # the refused one stored nothing
    best = experiment.evaluations.order_by("-miou", "step").first()
    assert (evaluation.step, evaluation.in_domain_miou, evaluation.in_domain_iou) == (best.step, best.miou, best.iou)
    assert evaluation.num_images == target.num_labeled == 24
    assert 0.0 <= evaluation.miou <= 1.0 and len(evaluation.iou) == len(evaluation.class_names) == 5
    assert sum(map(sum, evaluation.confusion_matrix)) == 24 * 32 * 32
    assert 1 <= len(evaluation.predictions) <= 8
    for sample in evaluation.predictions:
        for kind in ("image", "ground_truth", "prediction"):
            path = Path(settings.MEDIA_ROOT) / sample[kind]
            assert path.is_file() and path.is_relative_to(experiment.output_dir)
        with Image.open(Path(settings.MEDIA_ROOT) / sample["prediction"]) as mask:
            assert mask.mode == "P" and np.asarray(mask).max() < 5


def queued_evaluation(dataset, team_users, demo_folder, tmp_path) -> TransferEvaluation:
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    target = other_dataset(team_users["team"], team_users["alice"], demo_folder, tmp_path, "shapes-again")
    return lifecycle.create_queued(experiment, target, team_users["alice"])


def test_an_evaluation_whose_worker_died_fails_and_a_late_write_changes_nothing(
        dataset, team_users, demo_folder, tmp_path, without_worker):
    evaluation = queued_evaluation(dataset, team_users, demo_folder, tmp_path)
    claimed = lifecycle.claim_next("cpu", "w1")
    assert (claimed.pk, claimed.status, claimed.attempt) == (evaluation.pk, "running", 1)
    assert lifecycle.claim_next("cpu", "w2") is None
    TransferEvaluation.objects.filter(pk=evaluation.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.SEGLAB_HEARTBEAT_TIMEOUT + 1))

    assert lifecycle.fail_stale() == [evaluation.pk]

    evaluation.refresh_from_db()
    assert evaluation.status == "failed" and "w1 stopped sending heartbeats" in evaluation.error
    assert not lifecycle.succeed(evaluation.pk, 1, miou=0.9)
    assert TransferEvaluation.objects.get(pk=evaluation.pk).miou is None


def test_an_evaluation_whose_process_dies_fails_with_the_reason(dataset, team_users, demo_folder, tmp_path,
                                                                without_worker, monkeypatch):
    from workers import transfer_supervisor

    queued_evaluation(dataset, team_users, demo_folder, tmp_path)
    claimed = lifecycle.claim_next("cpu", "w1")
    monkeypatch.setattr(transfer_supervisor, "start_child", lambda evaluation: subprocess.Popen(
        [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]))

    transfer_supervisor.supervise_transfer(claimed)

    claimed.refresh_from_db()
    assert claimed.status == "failed" and "killed by SIGKILL (out of memory?)" in claimed.error


def test_a_worker_shutting_down_puts_the_evaluation_back_in_the_queue(dataset, team_users, demo_folder, tmp_path,
                                                                      without_worker, monkeypatch):
    from workers import transfer_supervisor

    queued_evaluation(dataset, team_users, demo_folder, tmp_path)
    claimed = lifecycle.claim_next("cpu", "w1")
    monkeypatch.setattr(settings, "SEGLAB_HEARTBEAT_SECONDS", 0.2)
    monkeypatch.setattr(transfer_supervisor, "start_child", lambda evaluation: subprocess.Popen(["sleep", "30"]))

    transfer_supervisor.supervise_transfer(claimed, shutting_down=lambda: True)

    claimed.refresh_from_db()
    assert (claimed.status, claimed.worker) == ("queued", "")
    assert lifecycle.claim_next("cpu", "w2").attempt == 2
