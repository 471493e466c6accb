"""Per-image scores and prediction samples of one evaluation step, over the API."""
import pytest
import torch

from engine.reporting import EvaluationResult, ImageScore, PredictionSample
from tests.conftest import PASSWORD, TINY_RUN
from webapp.experiments.launch import launch_experiment
from workers.reporter import DatabaseReporter

pytestmark = pytest.mark.django_db

SCORES = [ImageScore("easy", 0.9, 0.95, 100, [(1, 0, 5)]),
          ImageScore("hard", 0.1, 0.4, 100, [(1, 0, 40), (2, 1, 30)]),
          ImageScore("middle", 0.5, 0.7, 100, [(1, 0, 60), (0, 2, 1)]),
          ImageScore("ignored", None, None, 0, [])]


@pytest.fixture
def experiment(dataset, team_users):
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    reporter = DatabaseReporter(experiment, background=False)
    reporter.log_evaluation(3, EvaluationResult(
        step=3, miou=0.5, iou=[0.5] * 3, pixel_accuracy=0.7, mean_accuracy=0.7, mean_dice=0.6, dice=[0.6] * 3,
        confusion_matrix=[[1, 0, 0], [0, 1, 0], [0, 0, 1]], class_names=["sky", "road", "car"], images=SCORES))
    mask = torch.zeros(2, 2, dtype=torch.uint8)
    reporter.log_predictions(3, [PredictionSample("hard", torch.zeros(3, 2, 2, dtype=torch.uint8), mask, mask)])
    reporter.close()
    return experiment


def images(client, experiment, **params):
    return client.get(f"/api/v1/experiments/{experiment.pk}/evaluations/3/images/", params)


def test_images_are_listed_hardest_first_by_default(client, experiment):
    client.login(username="alice", password=PASSWORD)

    body = images(client, experiment).json()

    assert body["count"] == 4
    assert [row["image_id"] for row in body["results"]] == ["hard", "middle", "easy", "ignored"]
    hard = body["results"][0]
    assert hard["miou"] == 0.1 and hard["pixel_accuracy"] == 0.4 and hard["has_prediction"] is True
    assert hard["image_url"].endswith(f"/media/experiments/{experiment.pk}/predictions/images/hard.png")
    assert hard["confusions"] == [{"true_class": 1, "predicted_class": 0, "pixels": 40},
                                  {"true_class": 2, "predicted_class": 1, "pixels": 30}]
    assert body["results"][1]["has_prediction"] is False and body["results"][1]["image_url"] is None


def test_ordering_and_pages(client, experiment):
    client.login(username="alice", password=PASSWORD)

    best_first = images(client, experiment, ordering="-miou", limit=2).json()

    assert [row["image_id"] for row in best_first["results"]] == ["easy", "middle"]
    assert best_first["next"] and best_first["count"] == 4


def test_a_confusion_lists_the_images_where_it_is_largest(client, experiment):
    client.login(username="alice", password=PASSWORD)

    body = images(client, experiment, true_class=1, predicted_class=0).json()

    assert [(row["image_id"], row["confusion_pixels"]) for row in body["results"]] == [
        ("middle", 60), ("hard", 40), ("easy", 5)]
    assert images(client, experiment, true_class=0, predicted_class=1).json()["count"] == 0


@pytest.mark.parametrize("params, field", [
    ({"ordering": "loss"}, "ordering"),
    ({"true_class": 3, "predicted_class": 0}, "true_class"),  # three classes: 0-2
    ({"true_class": "x", "predicted_class": 0}, "true_class"),
    ({"true_class": 1}, "predicted_class"),
    ({"true_class": 1, "predicted_class": 1}, "predicted_class"),
    ({"limit": "-3"}, "limit"),
])
def test_a_bad_parameter_is_a_400_naming_it(client, experiment, params, field):
    client.login(username="alice", password=PASSWORD)

    response = images(client, experiment, **params)

    assert response.status_code == 400
    assert field in response.json()["fields"] and response.json()["error"]


def test_a_step_without_an_evaluation_is_a_404_and_one_past_any_step_a_400(client, experiment):
    client.login(username="alice", password=PASSWORD)
    base = f"/api/v1/experiments/{experiment.pk}/evaluations"

    missing = client.get(f"{base}/4/images/")
    huge = client.get(f"{base}/99999999999/predictions/")

    assert missing.status_code == 404 and "no evaluation at step 4" in missing.json()["error"]
    assert huge.status_code == 400 and "step" in huge.json()["fields"]


def test_prediction_samples_carry_their_png_urls(client, experiment):
    client.login(username="alice", password=PASSWORD)

    body = client.get(f"/api/v1/experiments/{experiment.pk}/evaluations/3/predictions/").json()

    [sample] = body["samples"]
    assert body["class_names"] == ["sky", "road", "car"] and sample["id"] == "hard"
    for kind, folder in (("image", "images"), ("ground_truth", "truth"), ("prediction", "step_0000003")):
        assert sample[f"{kind}_url"].endswith(f"/predictions/{folder}/hard.png")
        assert client.get(sample[f"{kind}_url"]).status_code == 200
    assert sample["overlay_url"] is None
    listed = client.get(f"/api/v1/experiments/{experiment.pk}/evaluations/").json()["evaluations"][0]
    assert listed["predictions"] == body["samples"]


@pytest.mark.parametrize("endpoint", ["images", "predictions"])
def test_another_team_gets_404_and_anonymous_callers_401(client, experiment, endpoint):
    url = f"/api/v1/experiments/{experiment.pk}/evaluations/3/{endpoint}/"
    assert client.get(url).status_code == 401

    client.login(username="charlie", password=PASSWORD)
    assert client.get(url).status_code == 404

    client.login(username="bob", password=PASSWORD)  # a read-only member reads
    assert client.get(url).status_code == 200
