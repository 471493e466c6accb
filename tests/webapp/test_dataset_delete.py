"""Deleting a dataset removes its row and then its files; a dataset in use stays whole."""
import pytest

from tests.conftest import PASSWORD, TINY_RUN
from webapp.datasets.ingest import preview_path
from webapp.datasets.models import Dataset


def files_of(dataset):
    return dataset.path, preview_path(dataset.path)


@pytest.mark.django_db(transaction=True)  # the files go once the deletion has committed
def test_deleting_from_the_page_removes_the_row_the_folder_and_the_preview(client, dataset):
    folder, preview = files_of(dataset)
    assert folder.is_dir() and preview.is_file()
    client.login(username="alice", password=PASSWORD)

    response = client.post(f"/datasets/{dataset.pk}/delete/")

    assert response.status_code == 302 and response["Location"] == "/datasets/"
    assert not Dataset.objects.exists()
    assert not folder.exists() and not preview.exists()


@pytest.mark.django_db(transaction=True)
def test_a_dataset_in_use_is_refused_and_keeps_its_files(client, dataset, team_users):
    from webapp.experiments.launch import launch_experiment

    launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    folder, preview = files_of(dataset)
    client.login(username="alice", password=PASSWORD)

    response = client.post(f"/datasets/{dataset.pk}/delete/", follow=True)

    assert "is used by 1 experiment; delete those first" in response.content.decode()
    assert Dataset.objects.filter(pk=dataset.pk).exists()
    assert folder.is_dir() and preview.is_file()
    api = client.delete(f"/api/v1/datasets/{dataset.pk}/")
    assert api.status_code == 400 and "is used by 1 experiment" in api.json()["fields"]["dataset"]


@pytest.mark.django_db(transaction=True)
def test_the_api_deletes_and_the_files_go_with_the_row(client, dataset):
    folder, preview = files_of(dataset)
    client.login(username="alice", password=PASSWORD)

    assert client.delete(f"/api/v1/datasets/{dataset.pk}/").status_code == 204
    assert not Dataset.objects.exists() and not folder.exists() and not preview.exists()


@pytest.mark.django_db(transaction=True)
def test_the_admin_deletes_through_the_same_function(client, dataset, team_users):
    team_users["alice"].is_staff = team_users["alice"].is_superuser = True
    team_users["alice"].save()
    folder, _ = files_of(dataset)
    client.login(username="alice", password=PASSWORD)

    response = client.post(f"/admin/datasets/dataset/{dataset.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Dataset.objects.exists() and not folder.exists()


@pytest.mark.parametrize("user, status", [("bob", 403), ("charlie", 404)])
def test_read_only_members_and_outsiders_cannot_delete(client, dataset, user, status):
    client.login(username=user, password=PASSWORD)

    assert client.post(f"/datasets/{dataset.pk}/delete/").status_code == status
    assert client.delete(f"/api/v1/datasets/{dataset.pk}/").status_code == status
    assert Dataset.objects.filter(pk=dataset.pk).exists() and dataset.path.is_dir()


def test_a_9_mib_description_is_refused_by_the_form_and_the_api(client, team_users, demo_zip):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.login(username="alice", password=PASSWORD)
    description = "x" * (9 * 1024 * 1024)
    form = client.post("/datasets/upload/", {"name": "big", "team": team_users["team"].pk, "description": description,
                                             "archive": SimpleUploadedFile("d.zip", demo_zip)})
    assert form.status_code == 400
    assert "at most 2000 characters" in form.context["form"].errors["description"][0]
    api = client.post("/api/v1/datasets/", {"name": "big", "team": team_users["team"].pk, "description": "x" * 2001,
                                            "archive": SimpleUploadedFile("d.zip", demo_zip)})
    assert api.status_code == 400 and "2000" in api.json()["fields"]["description"]
    assert not Dataset.objects.exists()


def test_the_refusal_names_what_keeps_the_dataset(dataset, team_users):
    from webapp.datasets.deletion import DatasetInUse, delete_dataset
    from webapp.sweeps.services import launch_sweep

    config = {k: v for k, v in TINY_RUN.items() if k != "labeled"}
    launch_sweep(dataset, {"methods": ["supervised"], "budgets": ["1/2", "1/4"], "seeds": [0], "config": config},
                 team_users["alice"], "grid")
    with pytest.raises(DatasetInUse, match="is used by 2 experiments and 1 sweep; delete those first"):
        delete_dataset(dataset)
