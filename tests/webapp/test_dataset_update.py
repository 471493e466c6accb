"""Changing a dataset through the API: names and colours reach the row, the runs' description and the
preview, all or nothing."""
import os

import numpy as np
import pytest
from PIL import Image

from engine.data import load_index
from engine.data.index import DESCRIPTION_FILE
from tests.conftest import PASSWORD
from webapp.datasets.ingest import preview_path
from webapp.datasets.models import Dataset


def url(dataset) -> str:
    return f"/api/v1/datasets/{dataset.pk}/"


def stored(dataset) -> tuple:
    """Everything a refused change must leave as it was: the row, classes.json, dataset.json and the preview."""
    row = Dataset.objects.values("name", "description", "classes", "info").get(pk=dataset.pk)
    files = [dataset.path / "classes.json", dataset.path / DESCRIPTION_FILE, preview_path(dataset.path)]
    return row, [path.read_bytes() for path in files]


def legend_has(dataset, rgb) -> bool:
    with Image.open(preview_path(dataset.path)) as sheet:
        legend = np.asarray(sheet.convert("RGB"))[-40:]  # the class legend under the samples
    return bool((legend == rgb).all(axis=-1).any())


def test_renamed_and_recoloured_classes_reach_the_row_the_response_the_description_and_the_preview(client, dataset):
    classes_json = (dataset.path / "classes.json").read_bytes()
    assert not legend_has(dataset, (255, 0, 0))
    client.login(username="alice", password=PASSWORD)

    response = client.patch(url(dataset), {"classes": [{"index": 1, "name": "circle", "color": [255, 0, 0]},
                                                       {"index": 2, "name": "square"}]},
                            content_type="application/json")

    assert response.status_code == 200, response.json()
    names = ["background", "circle", "square", "triangle", "ring"]
    colors = ["#000000", "#ff0000", "#3cb44b", "#4363d8", "#f58231"]
    dataset.refresh_from_db()
    for table in (dataset.classes, dataset.info["classes"], response.json()["classes"]):
        assert [c["name"] for c in table] == names and [c["color"] for c in table] == colors
    assert dataset.classes[1]["pixel_share"] > 0  # the statistics stay
    index = load_index(dataset.path)
    assert index.class_names == names and index.class_colors == colors
    assert (dataset.path / "classes.json").read_bytes() == classes_json
    assert index.mask_colors[1] == (0xe6, 0x19, 0x4b)  # masks are still decoded through classes.json
    assert legend_has(dataset, (255, 0, 0))


def test_a_colour_may_be_written_as_hex_and_the_name_and_description_change_alone(client, dataset):
    client.login(username="alice", password=PASSWORD)

    response = client.patch(url(dataset), {"name": "shapes v2", "description": "relabelled",
                                           "classes": [{"index": 4, "color": "#00FF00"}]},
                            content_type="application/json")

    assert response.status_code == 200, response.json()
    dataset.refresh_from_db()
    assert (dataset.name, dataset.description) == ("shapes v2", "relabelled")
    assert (dataset.classes[4]["name"], dataset.classes[4]["color"]) == ("ring", "#00ff00")
    assert load_index(dataset.path).class_colors[4] == "#00ff00"


@pytest.mark.parametrize("change, says", [
    ({"index": 2, "name": "circle"}, "class 1 has that name too"),
    ({"index": 4, "name": "triangle"}, "class 3 has that name too"),
    ({"index": 5, "name": "hexagon"}, "class 5: no such class; the dataset has classes 0-4"),
    ({"index": 3, "color": "blue"}, 'colour must be "#rrggbb" or [r, g, b] with whole numbers 0-255; got "blue"'),
    ({"index": 3, "color": [255, 0, 256]}, "got [255, 0, 256]"),
    ({"index": 3, "name": "x" * 101}, "name is 101 characters long; at most 100 are allowed"),
    ({"index": 3, "name": "tri\nangle"}, "control characters"),
    ({"index": 3, "name": "   "}, "name must be a non-empty text"),
])
def test_a_bad_class_change_is_a_400_naming_classes_and_changes_nothing(client, dataset, change, says):
    before = stored(dataset)
    client.login(username="alice", password=PASSWORD)

    response = client.patch(url(dataset), {"name": "renamed", "classes": [{"index": 1, "name": "circle"}, change]},
                            content_type="application/json")

    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["classes"] and says in response.json()["fields"]["classes"]
    assert stored(dataset) == before


def test_a_class_given_twice_is_refused(client, dataset):
    client.login(username="alice", password=PASSWORD)

    response = client.patch(url(dataset), {"classes": [{"index": 1, "name": "a"}, {"index": 1, "name": "b"}]},
                            content_type="application/json")

    assert response.status_code == 400 and "class 1: given more than once" in response.json()["fields"]["classes"]


def test_a_name_another_dataset_of_the_team_has_is_a_400_naming_name(client, dataset, team_users):
    Dataset.objects.create(team=team_users["team"], name="taken", storage_path="datasets/elsewhere")
    before = stored(dataset)
    client.login(username="alice", password=PASSWORD)

    response = client.patch(url(dataset), {"name": "taken", "classes": [{"index": 1, "name": "circle"}]},
                            content_type="application/json")

    assert response.status_code == 400
    assert "already has a dataset named 'taken'" in response.json()["fields"]["name"]
    assert stored(dataset) == before


def test_another_teams_dataset_name_is_free(client, dataset, team_users):
    Dataset.objects.create(team=team_users["other_team"], name="taken", storage_path="datasets/elsewhere")
    client.login(username="alice", password=PASSWORD)

    assert client.patch(url(dataset), {"name": "taken"}, content_type="application/json").status_code == 200


def test_a_description_over_the_limit_is_refused(client, dataset):
    before = stored(dataset)
    client.login(username="alice", password=PASSWORD)

    response = client.patch(url(dataset), {"description": "x" * 2001}, content_type="application/json")

    assert response.status_code == 400 and "2000" in response.json()["fields"]["description"]
    assert stored(dataset) == before


def test_a_dataset_whose_files_changed_since_inspection_is_refused_and_the_row_rolled_back(client, dataset):
    mask = next((dataset.path / "masks").iterdir())
    stat = mask.stat()
    os.utime(mask, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # dataset.json no longer matches the files
    before = stored(dataset)
    client.login(username="alice", password=PASSWORD)

    response = client.patch(url(dataset), {"name": "renamed", "classes": [{"index": 1, "name": "circle"}]},
                            content_type="application/json")

    assert response.status_code == 400
    assert "dataset.json: is missing or no longer matches the dataset's files" in response.json()["fields"]["classes"]
    assert stored(dataset) == before


def test_a_preview_that_cannot_be_drawn_puts_the_description_back(client, dataset, monkeypatch):
    from engine.data import DatasetError
    from webapp.datasets import editing
    from webapp.datasets.ingest import write_preview

    calls = []

    def fails_once(folder):
        calls.append(load_index(folder).class_names)
        if len(calls) == 1:
            raise DatasetError("the preview picture could not be drawn")
        write_preview(folder)

    monkeypatch.setattr(editing, "write_preview", fails_once)
    before = stored(dataset)
    client.login(username="alice", password=PASSWORD)

    response = client.patch(url(dataset), {"name": "renamed", "classes": [{"index": 1, "name": "circle"}]},
                            content_type="application/json")

    assert response.status_code == 400 and "could not be drawn" in response.json()["fields"]["classes"]
    assert [names[1] for names in calls] == ["circle", "disc"]  # drawn with the new names, then redrawn with the old
    assert stored(dataset) == before

@pytest.mark.parametrize("user, status", [("bob", 403), ("charlie", 404), (None, 401)])
def test_read_only_members_outsiders_and_anonymous_cannot_change_a_dataset(client, dataset, user, status):
    before = stored(dataset)
    if user:
        client.login(username=user, password=PASSWORD)

    response = client.patch(url(dataset), {"name": "mine", "classes": [{"index": 1, "name": "circle"}]},
                            content_type="application/json")

    assert response.status_code == status and response.json()["error"]
    assert stored(dataset) == before


def test_a_form_body_is_refused(client, dataset):
    client.login(username="alice", password=PASSWORD)

    response = client.patch(url(dataset), "name=mine", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415


def test_retrieve_gives_the_class_table_and_the_split_summary(client, dataset):
    client.login(username="alice", password=PASSWORD)

    body = client.get(url(dataset)).json()

    assert body["num_classes"] == 5 and body["splits"] == {"train": None, "val": None}
    assert [c["index"] for c in body["classes"]] == [0, 1, 2, 3, 4]
    assert set(body["classes"][0]) == {"index", "name", "color", "pixel_share", "num_images"}


def test_the_split_summary_counts_the_split_files(client, team_users, demo_folder, tmp_path):
    import shutil

    from webapp.datasets.ingest import ingest_folder

    folder = tmp_path / "upload"
    shutil.copytree(demo_folder, folder)
    stems = sorted(path.stem for path in (folder / "masks").iterdir())
    (folder / "splits").mkdir()
    (folder / "splits" / "train.txt").write_text("\n".join(stems[:16]))
    (folder / "splits" / "val.txt").write_text("\n".join(stems[16:]))
    dataset = ingest_folder(team_users["team"], "split shapes", folder, team_users["alice"])
    client.login(username="alice", password=PASSWORD)

    assert client.get(url(dataset)).json()["splits"] == {"train": 16, "val": len(stems) - 16}
