"""Asking for a cross-dataset evaluation: class matching, who may ask, and what is refused (nothing stored)."""
import json
import shutil

import pytest

from engine.transfer import class_mismatches
from tests.conftest import TINY_RUN
from webapp.accounts.models import ApiToken
from webapp.datasets.ingest import ingest_folder
from webapp.experiments import lifecycle
from webapp.experiments.launch import launch_experiment
from webapp.transfer.models import TransferEvaluation


def other_dataset(team, user, demo_folder, tmp_path, name, edit_classes=None):
    """A copy of the demo dataset, its classes.json changed by ``edit_classes`` (a list -> list)."""
    copy = tmp_path / name
    shutil.copytree(demo_folder, copy)
    if edit_classes is not None:
        description = json.loads((copy / "classes.json").read_text())
        description["classes"] = edit_classes(description["classes"])
        (copy / "classes.json").write_text(json.dumps(description))
    return ingest_folder(team, name, copy, user)


def renamed(classes):
    classes[2] = {**classes[2], "name": "crate"}
    return [*classes, {"name": "star", "color": "#123456"}]


@pytest.fixture
def api(client, team_users):
    def call(who, method, url, body=None):
        key = ApiToken.issue(team_users[who], "t")[1]
        return getattr(client, method)(url, body or {}, content_type="application/json",
                                       HTTP_AUTHORIZATION=f"Token {key}")
    return call


@pytest.fixture
def succeeded_run(dataset, team_users):
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    lifecycle.claim_next(experiment.queue, "w")
    lifecycle.succeed(experiment.pk, 1, "done", final_miou=0.5)
    experiment.output_dir.mkdir(parents=True, exist_ok=True)
    (experiment.output_dir / "best.pt").write_bytes(b"stands in for a checkpoint: requests only check it exists")
    return experiment


def url(experiment):
    return f"/api/v1/experiments/{experiment.pk}/transfer-evaluations/"


@pytest.mark.parametrize("run, other, expected", [
    (["bg", "car"], ["bg", "car"], []),
    (["bg", "car", "truck"], ["bg", "car", "lorry"], ["class 2 is 'lorry' here but 'truck' in the run's dataset"]),
    (["bg", "car", "truck"], ["bg", "car"], ["class 2 'truck' of the run's dataset is missing here"]),
    (["bg", "car"], ["bg", "car", "bus", "van"], ["class 2 'bus' here is not in the run's dataset",
                                                  "class 3 'van' here is not in the run's dataset"]),
    (["bg", "car", "bus"], ["bg", "bus"], ["class 1 is 'bus' here but 'car' in the run's dataset",
                                           "class 2 'bus' of the run's dataset is missing here"]),
])
def test_class_matching_lists_every_difference_in_order(run, other, expected):
    assert class_mismatches(run, other) == expected


def test_a_member_queues_an_evaluation_on_a_dataset_with_the_same_classes(api, succeeded_run, team_users, demo_folder,
                                                                          tmp_path):
    target = other_dataset(team_users["team"], team_users["alice"], demo_folder, tmp_path, "shapes-again")

    response = api("alice", "post", url(succeeded_run), {"dataset": target.pk})

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["dataset"], body["dataset_name"]) == ("queued", target.pk, "shapes-again")
    row = TransferEvaluation.objects.get()
    assert (row.experiment_id, row.queue, row.requested_by) == (succeeded_run.pk, "cpu", team_users["alice"])
    listed = api("bob", "get", url(succeeded_run)).json()["transfer_evaluations"]
    assert [entry["id"] for entry in listed] == [row.pk]


def test_mismatched_classes_are_refused_listing_them_and_nothing_is_stored(api, succeeded_run, team_users, demo_folder,
                                                                           tmp_path):
    target = other_dataset(team_users["team"], team_users["alice"], demo_folder, tmp_path, "renamed", renamed)

    response = api("alice", "post", url(succeeded_run), {"dataset": target.pk})

    assert response.status_code == 400
    message = response.json()["fields"]["dataset"]
    assert "class 2 is 'crate' here but 'box' in the run's dataset" in message
    assert "class 5 'star' here is not in the run's dataset" in message
    assert message in response.json()["error"]
    assert not TransferEvaluation.objects.exists()


@pytest.mark.parametrize("problem, field, words", [
    ("not succeeded", "status", "only a run that succeeded"),
    ("no checkpoint", "checkpoint", "no best.pt"),
    ("own dataset", "dataset", "the run's own dataset"),
    ("other team's dataset", "dataset", "does not exist"),
])
def test_requests_that_break_a_rule_are_refused_naming_the_field(api, succeeded_run, team_users, demo_folder, tmp_path,
                                                                 dataset, problem, field, words):
    target = other_dataset(team_users["team"], team_users["alice"], demo_folder, tmp_path, "shapes-again")
    run = succeeded_run
    if problem == "not succeeded":
        run = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
        (run.output_dir).mkdir(parents=True, exist_ok=True)
        (run.output_dir / "best.pt").write_bytes(b"x")
    elif problem == "no checkpoint":
        (run.output_dir / "best.pt").unlink()
    elif problem == "own dataset":
        target = dataset
    else:
        target = other_dataset(team_users["other_team"], team_users["charlie"], demo_folder, tmp_path, "theirs")

    response = api("alice", "post", url(run), {"dataset": target.pk})

    assert response.status_code == 400, response.json()
    assert words in response.json()["fields"][field]
    assert not TransferEvaluation.objects.exists()


def test_another_team_gets_404_and_a_read_only_member_403(api, succeeded_run, team_users, demo_folder, tmp_path):
    target = other_dataset(team_users["team"], team_users["alice"], demo_folder, tmp_path, "shapes-again")

    assert api("charlie", "post", url(succeeded_run), {"dataset": target.pk}).status_code == 404
    assert api("charlie", "get", url(succeeded_run)).status_code == 404
    assert api("bob", "post", url(succeeded_run), {"dataset": target.pk}).status_code == 403
    assert not TransferEvaluation.objects.exists()


def test_the_page_offers_the_teams_other_datasets_to_members_only(client, succeeded_run, team_users, demo_folder,
                                                                  tmp_path):
    from tests.conftest import PASSWORD

    other_dataset(team_users["team"], team_users["alice"], demo_folder, tmp_path, "shapes-again")
    other_dataset(team_users["other_team"], team_users["charlie"], demo_folder, tmp_path, "theirs")

    client.login(username="alice", password=PASSWORD)
    page = client.get(f"/experiments/{succeeded_run.pk}/").content.decode()
    assert 'id="transfer-form"' in page and ">shapes-again</option>" in page
    assert "theirs" not in page and ">shapes</option>" not in page
    client.login(username="bob", password=PASSWORD)
    page = client.get(f"/experiments/{succeeded_run.pk}/").content.decode()
    assert 'id="transfer-evaluations"' in page and 'id="transfer-form"' not in page


def test_a_writer_deletes_an_evaluation_and_its_samples_readers_cannot(api, succeeded_run, team_users, demo_folder,
                                                                        tmp_path):
    target = other_dataset(team_users["team"], team_users["alice"], demo_folder, tmp_path, "shapes-again")
    created = api("alice", "post", url(succeeded_run), {"dataset": target.pk}).json()
    evaluation = TransferEvaluation.objects.get(pk=created["id"])
    evaluation.output_dir.mkdir(parents=True)
    (evaluation.output_dir / "a.png").write_bytes(b"a sample picture")
    one = f"/api/v1/transfer-evaluations/{evaluation.pk}/"
    assert created["url"].endswith(one)

    assert api("charlie", "get", one).status_code == 404
    assert api("charlie", "delete", one).status_code == 404
    assert api("bob", "get", one).json()["dataset_name"] == "shapes-again"
    assert api("bob", "delete", one).status_code == 403
    assert TransferEvaluation.objects.filter(pk=evaluation.pk).exists()

    assert api("alice", "delete", one).status_code == 204

    assert not TransferEvaluation.objects.filter(pk=evaluation.pk).exists()
    assert not evaluation.output_dir.exists()
    assert api("alice", "get", url(succeeded_run)).json()["transfer_evaluations"] == []
