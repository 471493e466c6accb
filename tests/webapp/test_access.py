"""Every page and API call checks who is asking."""
import pytest

from tests.conftest import PASSWORD, TINY_RUN

PAGES = ["/experiments/", "/experiments/new/", "/datasets/", "/datasets/upload/"]
API = ["/api/v1/experiments/", "/api/v1/datasets/", "/api/v1/catalogue/"]


@pytest.fixture
def experiment(dataset, team_users):
    from webapp.experiments.launch import launch_experiment

    return launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])


@pytest.mark.parametrize("url", PAGES)
def test_pages_redirect_anonymous_to_login(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize("url", API)
def test_api_refuses_anonymous(client, db, url):
    response = client.get(url)
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"
    assert response.json() == {"error": "Authentication credentials were not provided."}


def test_outsider_gets_404_on_dataset_and_experiment(client, experiment, team_users):
    client.login(username="charlie", password=PASSWORD)
    dataset = experiment.dataset
    for url in (f"/datasets/{dataset.pk}/", f"/experiments/{experiment.pk}/", f"/api/v1/datasets/{dataset.pk}/",
                f"/api/v1/experiments/{experiment.pk}/", f"/api/v1/experiments/{experiment.pk}/metrics/"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/experiments/{experiment.pk}/cancel/").status_code == 404
    assert client.get("/api/v1/experiments/").json()["results"] == []
    assert client.get("/api/v1/datasets/").json()["results"] == []


def test_team_members_see_the_team_data(client, experiment):
    for username in ("alice", "bob"):
        client.login(username=username, password=PASSWORD)
        assert client.get(f"/experiments/{experiment.pk}/").status_code == 200
        assert client.get(f"/datasets/{experiment.dataset.pk}/").status_code == 200
        assert [e["id"] for e in client.get("/api/v1/experiments/").json()["results"]] == [experiment.pk]


def test_read_only_member_cannot_cancel(client, experiment):
    client.login(username="bob", password=PASSWORD)
    assert client.post(f"/experiments/{experiment.pk}/cancel/").status_code == 403
    assert client.post(f"/api/v1/experiments/{experiment.pk}/cancel/").status_code == 403
    experiment.refresh_from_db()
    assert experiment.status == "queued"


def test_read_only_member_cannot_launch(client, dataset):
    client.login(username="bob", password=PASSWORD)
    response = client.post("/api/v1/experiments/", {"dataset": dataset.pk, "config": TINY_RUN},
                           content_type="application/json")
    assert response.status_code == 403


def test_media_files_are_only_served_to_the_team(client, experiment, settings):
    path = experiment.output_dir / "predictions" / "step_0000003" / "a.png"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"png")
    url = f"/media/experiments/{experiment.pk}/predictions/step_0000003/a.png"
    client.login(username="charlie", password=PASSWORD)
    assert client.get(url).status_code == 404
    client.login(username="alice", password=PASSWORD)
    assert client.get(url).status_code == 200


def test_dataset_preview_is_only_served_to_the_team(client, dataset):
    url = dataset.preview_url
    assert url.startswith("/media/datasets/")
    client.login(username="charlie", password=PASSWORD)
    assert client.get(url).status_code == 404
    client.login(username="alice", password=PASSWORD)
    response = client.get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content)[:8] == b"\x89PNG\r\n\x1a\n"
    assert url in client.get(f"/datasets/{dataset.pk}/").content.decode()


def test_other_media_files_are_never_served(client, dataset):
    client.login(username="alice", password=PASSWORD)
    assert client.get(f"/media/{dataset.storage_path}/classes.json").status_code == 404
    assert client.get("/media/experiments/1/last.pt").status_code == 404
