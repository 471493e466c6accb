"""Uploading a dataset zip through the web form: valid data lands whole, bad data not at all."""
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from engine.data import DatasetError
from tests.conftest import PASSWORD
from tests.pngs import png_declaring, with_broken_pixel_data
from webapp.datasets.models import Dataset


def png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def valid_files() -> dict[str, bytes]:
    image = np.zeros((16, 16, 3))
    mask = np.zeros((16, 16))
    mask[4:8, 4:8] = 1
    return {"images/a.png": png(image), "masks/a.png": png(mask), "images/b.png": png(image), "masks/b.png": png(mask),
            "images/c.png": png(image)}


def upload(client, team, data: bytes, name="mine"):
    archive = SimpleUploadedFile("data.zip", data, content_type="application/zip")
    return client.post("/datasets/upload/", {"name": name, "team": team.pk, "archive": archive})


def dataset_files(media_root: Path) -> list[Path]:
    folder = Path(media_root) / "datasets"
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_valid_zip_becomes_a_dataset(client, team_users, settings):
    client.login(username="alice", password=PASSWORD)
    response = upload(client, team_users["team"], make_zip(valid_files()))
    dataset = Dataset.objects.get(name="mine")
    assert response.status_code == 302 and response["Location"] == f"/datasets/{dataset.pk}/"
    assert (dataset.num_images, dataset.num_labeled, dataset.num_unlabeled) == (3, 2, 1)
    assert len(dataset.classes) == 2
    assert (dataset.path / "images" / "c.png").is_file()
    page = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert "unlabelled" in page and ">1<" in page


BAD_ZIPS = {
    "mask without image": ({"masks/z.png": png(np.zeros((16, 16)))}, "masks/z.png", "mask has no image"),
    "mask of another size": ({"masks/a.png": png(np.zeros((8, 16)))}, "masks/a.png", "mask is 16x8 but its image"),
    "not an image": ({"images/b.png": b"this is not a png"}, "images/b.png", "unreadable image: not an image file"),
    "corrupt first image": ({"images/a.png": with_broken_pixel_data(png(np.zeros((16, 16, 3))))}, "images/a.png",
                            "image data is corrupt or truncated"),
    "mask bomb": ({"masks/a.png": png_declaring(20000, 20000)}, "masks/a.png", "decompression bomb"),
    "name too long": ({"images/" + "n" * 300 + ".png": png(np.zeros((16, 16, 3)))}, "images/" + "n" * 300 + ".png",
                      "at most 255 bytes"),
    "colour word": ({"classes.json": b'{"classes": ["bg", {"name": "road", "color": "blue"}]}'}, "classes.json",
                    'class 1 ("road"): colour must be "#rrggbb" or [r, g, b]'),
    "path with ..": ({"images/../../evil.png": png(np.zeros((16, 16, 3)))}, "images/../../evil.png",
                     "leaves the dataset folder"),
}


@pytest.mark.parametrize("problem", BAD_ZIPS)
def test_bad_zip_is_refused_and_leaves_nothing(client, team_users, settings, problem):
    changes, file, message = BAD_ZIPS[problem]
    client.login(username="alice", password=PASSWORD)
    before = dataset_files(settings.MEDIA_ROOT)
    response = upload(client, team_users["team"], make_zip({**valid_files(), **changes}))
    assert response.status_code == 400
    errors = response.context["problems"]
    assert any(e["file"] == file and message in e["message"] for e in errors), errors
    assert "nothing was stored" in response.content.decode()
    assert not Dataset.objects.exists()
    assert dataset_files(settings.MEDIA_ROOT) == before


def test_not_a_zip_is_refused(client, team_users, settings):
    client.login(username="alice", password=PASSWORD)
    response = upload(client, team_users["team"], b"plain text")
    assert response.status_code == 400
    assert "is not a valid zip file" in response.content.decode()
    assert not Dataset.objects.exists()


def test_duplicate_name_is_refused(client, team_users, settings):
    client.login(username="alice", password=PASSWORD)
    assert upload(client, team_users["team"], make_zip(valid_files())).status_code == 302
    response = upload(client, team_users["team"], make_zip(valid_files()))
    assert response.status_code == 400
    assert "already has a dataset named" in response.content.decode()
    assert Dataset.objects.count() == 1


def test_cannot_upload_into_a_team_one_is_not_in(client, team_users):
    client.login(username="charlie", password=PASSWORD)
    response = upload(client, team_users["team"], make_zip(valid_files()))
    assert response.status_code == 400
    assert "team" in response.context["form"].errors
    assert not Dataset.objects.exists()


def test_api_upload_and_error_shape(client, team_users, settings):
    client.login(username="alice", password=PASSWORD)
    good = SimpleUploadedFile("d.zip", make_zip(valid_files()))
    response = client.post("/api/v1/datasets/", {"name": "api", "team": team_users["team"].pk, "archive": good})
    assert response.status_code == 201, response.content
    assert response.json()["num_images"] == 3
    bad = SimpleUploadedFile("d.zip", make_zip({**valid_files(), **BAD_ZIPS["mask of another size"][0]}))
    response = client.post("/api/v1/datasets/", {"name": "bad", "team": team_users["team"].pk, "archive": bad})
    assert response.status_code == 400
    body = response.json()
    assert "mask is 16x8" in body["error"] and body["fields"]["archive"]
    # The same (file, message) list the upload page shows: the engine's DatasetError.
    assert {"file": "masks/a.png", "message": body["problems"][0]["message"]} in body["problems"]
    assert "mask is 16x8" in body["problems"][0]["message"]
    assert Dataset.objects.count() == 1


def server_paths(settings) -> list[str]:
    """What no message may show: where the server keeps uploads while checking them."""
    return ["/tmp", str(settings.MEDIA_ROOT), ".staging-", ".partial-", "upload.zip"]


@pytest.mark.parametrize("problem", [*BAD_ZIPS, "not a zip", "big not a zip"])
def test_refused_upload_messages_never_show_a_server_path(client, team_users, settings, problem):
    client.login(username="alice", password=PASSWORD)
    if problem == "not a zip":
        data = b"plain text"
    elif problem == "big not a zip":
        data = bytes(3 * 1024 * 1024)  # past FILE_UPLOAD_MAX_MEMORY_SIZE: Django keeps it in a temporary file
    else:
        data = make_zip({**valid_files(), **BAD_ZIPS[problem][0]})
    archive = SimpleUploadedFile("holiday photos.zip", data, content_type="application/zip")
    response = client.post("/datasets/upload/", {"name": "mine", "team": team_users["team"].pk, "archive": archive})
    assert response.status_code == 400
    errors = response.context["problems"]
    assert errors
    for file, message in ((e["file"], e["message"]) for e in errors):
        for path in server_paths(settings):
            assert path not in file and path not in message, (file, message)
    if problem.endswith("not a zip"):
        assert errors == [{"file": "holiday photos.zip", "message": "is not a valid zip file (File is not a zip file)"}]


def test_a_preview_that_cannot_be_drawn_is_a_refusal_not_a_crash(team_users, settings, monkeypatch, tmp_path):
    from webapp.datasets import ingest

    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(ingest, "sample_sheet", broken)
    before = dataset_files(settings.MEDIA_ROOT)
    archive = tmp_path / "mine.zip"
    archive.write_bytes(make_zip(valid_files()))
    with pytest.raises(DatasetError) as error:
        ingest.ingest_zip(team_users["team"], "mine", archive, team_users["alice"])
    [(file, message)] = error.value.errors
    assert file == "" and "preview picture could not be drawn" in message and "drawing failed" not in message
    assert not Dataset.objects.exists()
    assert dataset_files(settings.MEDIA_ROOT) == before
    assert not [p for p in (Path(settings.MEDIA_ROOT) / "datasets").iterdir() if p.name.startswith(".")]
