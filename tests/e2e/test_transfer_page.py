"""A real browser asks for a finished run's evaluation on another dataset and sees in-domain against
cross-domain scores side by side, with the other dataset's samples drawn."""
import pytest

from tests.conftest import TINY_RUN, login, wait_for
from tests.webapp.test_transfer_evaluations import other_dataset, renamed
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import Experiment
from webapp.transfer.models import TransferEvaluation

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_evaluate_on_another_dataset_from_the_page(page, live_server, team_users, dataset, demo_folder, tmp_path,
                                                   celery_worker):
    # Given a finished tiny run and two more datasets of the team, one with a renamed and an extra class
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    wait_for(lambda: Experiment.objects.get(pk=experiment.pk).is_finished, timeout=180, message="the run to finish")
    assert Experiment.objects.get(pk=experiment.pk).status == "succeeded"
    target = other_dataset(team_users["team"], team_users["alice"], demo_folder, tmp_path, "shapes-again")
    mismatched = other_dataset(team_users["team"], team_users["alice"], demo_folder, tmp_path, "renamed", renamed)
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/experiments/{experiment.pk}/")

    # When the mismatched one is asked for, the refusal lists the differences next to the select
    page.select_option("#transfer-dataset", str(mismatched.pk))
    page.click("#transfer-submit")
    error = page.locator("#transfer-error")
    error.wait_for()
    assert "class 2 is 'crate' here but 'box' in the run's dataset" in error.inner_text()
    assert "class 5 'star' here is not in the run's dataset" in error.inner_text()
    assert not TransferEvaluation.objects.exists()

    # When the matching one is asked for, the section shows both columns once the worker is done
    page.select_option("#transfer-dataset", str(target.pk))
    page.click("#transfer-submit")
    table = page.locator(".transfer-evaluation[data-status=succeeded] .transfer-scores")
    table.wait_for(timeout=120_000)
    assert page.locator("#transfer-error").count() == 0
    evaluation = TransferEvaluation.objects.get()
    rows = table.locator("tbody tr")
    assert rows.count() == 5
    assert rows.nth(2).locator("td").all_inner_texts()[:3] == [
        "box", f"{100 * evaluation.in_domain_iou[2]:.1f}" if evaluation.in_domain_iou[2] is not None else "—",
        f"{100 * evaluation.iou[2]:.1f}" if evaluation.iou[2] is not None else "—"]
    assert table.locator(".transfer-miou th").all_inner_texts()[:3] == [
        "mIoU", f"{100 * evaluation.in_domain_miou:.1f}", f"{100 * evaluation.miou:.1f}"]
    samples = page.locator(".transfer-sample")
    assert samples.count() == len(evaluation.predictions) > 0
    wait_for(lambda: page.locator(".transfer-sample[data-drawn=true]").count() == samples.count(), timeout=30,
             message="the samples to be drawn")
    folder = evaluation.output_dir
    assert folder.is_dir()

    # When its Delete button is confirmed, the card and its sample pictures are gone
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(".transfer-evaluation .transfer-delete")
    page.locator("#transfer-list", has_text="No evaluation on another dataset yet.").wait_for()
    assert not TransferEvaluation.objects.exists() and not folder.exists()
    page.watch.assert_clean(expected_errors=("400 for POST",))  # the refused request above
