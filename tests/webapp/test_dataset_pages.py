"""The dataset pages: list columns and pages, the detail page's class table, samples, splits
and runs, class editing from the page, and who may see and change what."""
import io
import re
import shutil

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from engine.data import load_index
from engine.data.budget import validation_ids
from engine.data.preview import SAMPLES_MANIFEST
from tests.conftest import PASSWORD, TINY_RUN
from tests.webapp.test_dataset_upload import make_zip, png
from webapp.datasets.ingest import preview_path, samples_path
from webapp.datasets.models import Dataset
from webapp.datasets.views import DATASETS_PER_PAGE


def files_bytes(*paths) -> int:
    total = 0
    for path in paths:
        total += (path.stat().st_size if path.is_file()
                  else sum(p.stat().st_size for p in path.rglob("*") if p.is_file()))
    return total


def counted_zip() -> bytes:
    """Three masks: a holds classes 0 and 1, b holds 0 and 2, c only 0; d has no mask."""
    image = np.zeros((8, 8, 3))
    a, b, c = np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 8))
    a[0:2, 0:2] = 1
    b[4:8, 4:8] = 2
    return make_zip({"images/a.png": png(image), "masks/a.png": png(a), "images/b.png": png(image),
                     "masks/b.png": png(b), "images/c.png": png(image), "masks/c.png": png(c),
                     "images/d.png": png(image)})


def upload(client, team, data: bytes, name="counted", **headers):
    archive = SimpleUploadedFile("data.zip", data, content_type="application/zip")
    return client.post("/datasets/upload/", {"name": name, "team": team.pk, "archive": archive}, headers=headers)


def class_rows(page: str) -> dict[int, str]:
    return {int(index): row for index, row in re.findall(r'<tr data-class="(\d+)"[^>]*>(.*?)</tr>', page, re.S)}


def test_upload_stores_the_size_on_disk_and_the_images_containing_each_class(client, team_users):
    client.login(username="alice", password=PASSWORD)

    response = upload(client, team_users["team"], counted_zip())

    dataset = Dataset.objects.get(name="counted")
    assert response.status_code == 302
    assert [c["num_images"] for c in dataset.classes] == [3, 1, 1]
    assert dataset.size_bytes == files_bytes(dataset.path, preview_path(dataset.path), samples_path(dataset.path))
    rows = class_rows(client.get(f"/datasets/{dataset.pk}/").content.decode())
    assert [re.findall(r"<td>(\d+)</td>", rows[i])[-1] for i in range(3)] == ["3", "1", "1"]
    assert "2.1 %" in rows[1] and "8.3 %" in rows[2]  # 4 and 16 of the 192 labelled pixels


def test_the_list_shows_size_creator_and_date_and_dashes_for_older_rows(client, team_users, dataset):
    Dataset.objects.create(team=team_users["team"], name="older", storage_path="datasets/gone")
    client.login(username="alice", password=PASSWORD)

    page = client.get("/datasets/").content.decode()

    rows = dict(re.findall(r'<a href="/datasets/\d+/">([^<]+)</a></td>(.*?)</tr>', page, re.S))
    assert "<th>Size</th>" in page and "<th>Created by</th>" in page and "<th>Created</th>" in page
    assert f'title="{dataset.size_bytes} bytes"' in rows["shapes"] and "KB" in rows["shapes"]
    assert "<td>alice</td>" in rows["shapes"] and dataset.created_at.strftime("%Y-%m-%d") in rows["shapes"]
    assert rows["older"].count("—") == 2  # no size, no creator


def test_the_list_is_split_into_pages(client, team_users):
    Dataset.objects.bulk_create([Dataset(team=team_users["team"], name=f"set {i:03d}", storage_path=f"datasets/{i}")
                                 for i in range(DATASETS_PER_PAGE + 3)])
    client.login(username="alice", password=PASSWORD)

    first = client.get("/datasets/").content.decode()
    second = client.get("/datasets/?page=2").content.decode()

    assert len(re.findall(r'<a href="/datasets/\d+/">', first)) == DATASETS_PER_PAGE
    assert "Page 1 of 2" in first and 'href="?page=2"' in first
    assert len(re.findall(r'<a href="/datasets/\d+/">', second)) == 3


def test_the_split_summary_counts_the_engines_validation_split(client, dataset):
    client.login(username="alice", password=PASSWORD)

    page = client.get(f"/datasets/{dataset.pk}/").content.decode()

    summary = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]+)</td></tr>", page))
    val = validation_ids(load_index(dataset.path))
    assert summary["Validation images"] == str(len(val)) == "5"  # 20 % of 24 masked images
    assert summary["Masked images for label budgets"] == str(24 - len(val))
    assert summary["Unlabelled images"] == "8"
    assert "chosen by a hash of the image names" in page


def test_the_page_lists_the_runs_with_status_method_and_best_miou(client, dataset, team_users):
    from webapp.experiments.models import Experiment

    Experiment.objects.create(team=dataset.team, dataset=dataset, name="mean teacher run", status="succeeded",
                              config={**TINY_RUN, "method": "mean_teacher"}, best_miou=0.4567)
    client.login(username="alice", password=PASSWORD)

    page = client.get(f"/datasets/{dataset.pk}/").content.decode()

    runs = page.split('id="dataset-runs"', 1)[1].split("</table>", 1)[0]
    assert "mean teacher run" in runs and "Succeeded" in runs and "<td>mean_teacher</td>" in runs
    assert "<td>45.7</td>" in runs


def test_the_sample_pictures_carry_each_pixels_class(client, team_users):
    client.login(username="alice", password=PASSWORD)
    upload(client, team_users["team"], counted_zip())
    dataset = Dataset.objects.get(name="counted")

    page = client.get(f"/datasets/{dataset.pk}/").content.decode()

    labels_urls = re.findall(r'data-labels="([^"]+)"', page)
    assert len(labels_urls) == 3  # every labelled image, no more than were uploaded
    response = client.get("/" + labels_urls[0].lstrip("/"))
    assert response.status_code == 200
    with Image.open(io.BytesIO(b"".join(response.streaming_content))) as picture:
        labels = np.asarray(picture)
    expected = np.zeros((8, 8))
    expected[0:2, 0:2] = 1
    assert np.array_equal(labels, expected)  # a's mask, class by class


def test_an_older_dataset_renders_with_dashes_and_gets_its_samples_drawn(client, dataset):
    shutil.rmtree(samples_path(dataset.path))
    Dataset.objects.filter(pk=dataset.pk).update(
        size_bytes=None, created_by=None, classes=[{"index": c["index"], "name": c["name"], "color": c["color"]}
                                                   for c in dataset.classes])
    client.login(username="alice", password=PASSWORD)

    response = client.get(f"/datasets/{dataset.pk}/")

    page = response.content.decode()
    assert response.status_code == 200
    assert all(row.count("—") == 2 for row in class_rows(page).values())  # no pixel share, no image count
    assert 'id="dataset-size">—<' in page and "uploaded by —" in page
    assert (samples_path(dataset.path) / SAMPLES_MANIFEST).is_file() and "data-labels=" in page


def test_classes_renamed_and_recoloured_from_the_page(client, dataset):
    client.login(username="alice", password=PASSWORD)
    form = {f"{kind}_{c['index']}": c[kind] for c in dataset.classes for kind in ("name", "color")}

    response = client.post(f"/datasets/{dataset.pk}/classes/", {**form, "name_1": "disc", "color_1": "#123456"})

    assert response.status_code == 302 and response["Location"] == f"/datasets/{dataset.pk}/"
    dataset.refresh_from_db()
    assert (dataset.classes[1]["name"], dataset.classes[1]["color"]) == ("disc", "#123456")
    assert load_index(dataset.path).class_names[1] == "disc"  # the description runs read
    assert 'value="disc"' in client.get(f"/datasets/{dataset.pk}/").content.decode()


def test_a_bad_colour_is_shown_beside_its_class_and_nothing_is_stored(client, dataset):
    client.login(username="alice", password=PASSWORD)
    before = Dataset.objects.values("classes", "info").get(pk=dataset.pk)
    description = (dataset.path / "dataset.json").read_bytes()
    form = {f"{kind}_{c['index']}": c[kind] for c in dataset.classes for kind in ("name", "color")}

    response = client.post(f"/datasets/{dataset.pk}/classes/", {**form, "name_0": "ground", "color_2": "blue"})

    assert response.status_code == 400
    rows = class_rows(response.content.decode())
    assert 'class="error">class 2 (&quot;' in rows[2] and "colour must be" in rows[2]
    assert "error" not in rows[0] and "error" not in rows[1]
    assert Dataset.objects.values("classes", "info").get(pk=dataset.pk) == before
    assert (dataset.path / "dataset.json").read_bytes() == description


def test_a_read_only_member_sees_no_form_and_cannot_post(client, dataset):
    client.login(username="bob", password=PASSWORD)
    before = Dataset.objects.get(pk=dataset.pk).classes

    page = client.get(f"/datasets/{dataset.pk}/").content.decode()
    response = client.post(f"/datasets/{dataset.pk}/classes/", {"name_0": "mine", "color_0": "#ffffff"})

    assert 'id="classes-form"' not in page and "<input" not in page.split('id="class-table"')[1].split("</table>")[0]
    assert 'id="delete-dataset"' not in page
    assert response.status_code == 403
    assert Dataset.objects.get(pk=dataset.pk).classes == before


def test_another_team_gets_404_on_the_page_the_edit_and_the_samples(client, dataset):
    client.login(username="alice", password=PASSWORD)
    sample_url = re.findall(r'data-image="([^"]+)"', client.get(f"/datasets/{dataset.pk}/").content.decode())[0]
    assert client.get("/" + sample_url.lstrip("/")).status_code == 200
    client.logout()
    client.login(username="charlie", password=PASSWORD)

    assert client.get(f"/datasets/{dataset.pk}/").status_code == 404
    assert client.post(f"/datasets/{dataset.pk}/classes/", {"name_0": "x", "color_0": "#ffffff"}).status_code == 404
    assert client.get("/" + sample_url.lstrip("/")).status_code == 404
    assert client.get(f"/media/{dataset.storage_path}.samples/{SAMPLES_MANIFEST}").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_deleting_is_refused_while_a_run_is_queued_and_then_removes_every_file(client, dataset, team_users):
    from webapp.experiments.launch import launch_experiment

    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    assert experiment.status == "queued"
    folders = [dataset.path, preview_path(dataset.path), samples_path(dataset.path)]
    client.login(username="alice", password=PASSWORD)

    refused = client.post(f"/datasets/{dataset.pk}/delete/", follow=True)

    assert "is used by 1 experiment; delete those first" in refused.content.decode()
    assert refused.redirect_chain[-1][0] == f"/datasets/{dataset.pk}/"
    assert all(path.exists() for path in folders)
    experiment.delete()
    deleted = client.post(f"/datasets/{dataset.pk}/delete/")
    assert deleted.status_code == 302 and not Dataset.objects.exists()
    assert not any(path.exists() for path in folders)


def test_the_upload_answers_json_to_the_pages_script(client, team_users):
    client.login(username="alice", password=PASSWORD)
    bad = counted_zip()[:-1]  # a zip cut short
    bad_files = make_zip({"images/a.png": png(np.zeros((8, 8, 3))), "masks/a.png": png(np.zeros((4, 8)))})

    good = upload(client, team_users["team"], counted_zip(), X_Requested_With="XMLHttpRequest")
    refused = upload(client, team_users["team"], bad_files, name="bad", X_Requested_With="XMLHttpRequest")
    unnamed = upload(client, team_users["team"], bad, name="", X_Requested_With="XMLHttpRequest")

    dataset = Dataset.objects.get(name="counted")
    assert good.status_code == 201 and good.json() == {"redirect": f"/datasets/{dataset.pk}/"}
    assert refused.status_code == 400
    assert refused.json()["problems"][0]["file"] == "masks/a.png"
    assert "mask is 8x4 but its image" in refused.json()["problems"][0]["message"]
    assert unnamed.status_code == 400 and "name" in unnamed.json()["fields"]
    assert not Dataset.objects.filter(name="bad").exists()


def test_without_script_the_refusal_sits_beside_the_zip_field_and_the_limit_is_said(client, team_users, settings):
    settings.SEGLAB_MAX_UPLOAD_BYTES = 3 * 1024**3
    client.login(username="alice", password=PASSWORD)
    bad_files = make_zip({"images/a.png": png(np.zeros((8, 8, 3))), "masks/a.png": png(np.zeros((4, 8)))})

    page = client.get("/datasets/upload/").content.decode()
    response = upload(client, team_users["team"], bad_files, name="bad")

    assert "Largest upload: 3.0\xa0GB" in page or "Largest upload: 3.0 GB" in page
    field = response.content.decode().split('for="id_archive"', 1)[1].split('<div class="field', 1)[0]
    assert response.status_code == 400 and "<code>masks/a.png</code>: mask is 8x4 but its image" in field


def test_the_migration_measures_datasets_uploaded_before_sizes_were_stored(dataset, team_users):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("webapp.datasets.migrations.0003_size_on_disk")
    stored = dataset.size_bytes
    Dataset.objects.filter(pk=dataset.pk).update(size_bytes=None)
    gone = Dataset.objects.create(team=team_users["team"], name="gone", storage_path="datasets/not-there")

    migration.measure_older_datasets(apps, schema_editor=None)

    assert Dataset.objects.get(pk=dataset.pk).size_bytes == stored > 0
    assert Dataset.objects.get(pk=gone.pk).size_bytes is None
