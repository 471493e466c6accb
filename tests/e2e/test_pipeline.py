"""The whole product on real services: upload through the form, launch, a real Celery
worker process trains, rows land in PostgreSQL, the page shows the final mIoU."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.html import escape

from tests.conftest import PASSWORD, wait_for
from webapp.datasets.models import Dataset
from webapp.experiments.models import Evaluation, Experiment, MetricPoint

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_upload_launch_train_and_see_the_final_miou(client, team_users, demo_zip, celery_worker):
    client.login(username="alice", password=PASSWORD)
    archive = SimpleUploadedFile("shapes.zip", demo_zip, content_type="application/zip")
    response = client.post("/datasets/upload/", {"name": "shapes", "team": team_users["team"].pk, "archive": archive})
    assert response.status_code == 302
    dataset = Dataset.objects.get(name="shapes")
    assert (dataset.num_labeled, dataset.num_unlabeled) == (24, 8)

    form = {"dataset": dataset.pk, "arch": "unet", "method": "supervised", "labeled": "1/2", "iters": 20,
            "batch_size": 4, "crop_size": 32, "device": "cpu", "eval_every": 10, "log_every": 2,
            "arch__unet__base_width": 4, "arch__unet__depth": 2}
    response = client.post("/experiments/new/", form)
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    experiment = Experiment.objects.get()

    wait_for(lambda: Experiment.objects.get(pk=experiment.pk).is_finished, timeout=240, message="the run to finish")
    experiment.refresh_from_db()
    assert experiment.status == "succeeded", experiment.error
    assert MetricPoint.objects.filter(experiment=experiment, name="loss").count() == 10
    assert list(Evaluation.objects.filter(experiment=experiment).values_list("step", flat=True)) == [10, 20]
    page = client.get(f"/experiments/{experiment.pk}/").content.decode()
    # Percent, as on every page.
    assert f'<span class="big" id="final-miou">{100 * experiment.final_miou:.1f}</span>' in page
    assert experiment.events.filter(kind="succeeded").exists()


def test_a_run_whose_dataset_files_are_gone_fails_with_a_clear_error(client, team_users, dataset, celery_worker):
    import shutil

    from webapp.experiments.launch import launch_experiment

    experiment = launch_experiment(dataset, {"iters": 4, "batch_size": 4, "labeled": "1/2", "crop_size": 32,
                                             "device": "cpu", "model_options": {"base_width": 4, "depth": 2}})
    shutil.rmtree(dataset.path)  # a storage mishap between launch and start
    wait_for(lambda: Experiment.objects.get(pk=experiment.pk).is_finished, timeout=120, message="the run to fail")
    experiment.refresh_from_db()
    assert experiment.status == "failed"
    assert "are gone from the server's storage" in experiment.error
    client.login(username="alice", password=PASSWORD)
    assert escape(experiment.error) in client.get(f"/experiments/{experiment.pk}/").content.decode()


def test_a_launch_the_dataset_cannot_fill_never_reaches_a_worker(team_users, dataset):
    from engine.config import ConfigError
    from webapp.experiments.launch import launch_experiment

    with pytest.raises(ConfigError) as refused:
        launch_experiment(dataset, {"iters": 4, "batch_size": 64, "labeled": "1/2", "crop_size": 32, "device": "cpu"})
    assert "batch_size 64 is larger than" in refused.value.errors["batch_size"]
    assert not Experiment.objects.exists()
