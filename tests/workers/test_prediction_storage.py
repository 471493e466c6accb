"""The reporter stores each evaluation's per-image scores and its samples as PNGs the page colours itself."""
import numpy as np
import pytest
import torch
from django.conf import settings
from PIL import Image

from engine.reporting import EvaluationResult, ImageScore, PredictionSample
from tests.conftest import TINY_RUN
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import Evaluation
from webapp.experiments.models import ImageScore as ImageScoreRow
from workers.reporter import DatabaseReporter

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("without_worker")]

TRUTH = torch.tensor([[0, 1], [1, 255]], dtype=torch.uint8)
PREDICTION = torch.tensor([[0, 0], [1, 1]], dtype=torch.uint8)


def result(step: int, images: list[ImageScore]) -> EvaluationResult:
    return EvaluationResult(step=step, miou=0.5, iou=[0.5, 0.5], pixel_accuracy=0.75, mean_accuracy=0.75,
                            mean_dice=0.6, dice=[0.6, 0.6], confusion_matrix=[[1, 0], [1, 1]],
                            class_names=["background", "cell"], images=images)


SCORES = [ImageScore("a", 0.9, 0.95, 100, [(1, 0, 5)]), ImageScore("b", 0.2, 0.5, 100, [(1, 0, 40), (0, 1, 10)]),
          ImageScore("c", None, None, 0, [])]


@pytest.fixture
def reporter(dataset, team_users):
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    reporter = DatabaseReporter(experiment, background=False)
    yield reporter
    reporter.close()


def test_an_evaluation_stores_one_score_per_image(reporter):
    reporter.log_evaluation(3, result(3, SCORES))

    rows = ImageScoreRow.objects.filter(evaluation__experiment=reporter.experiment).order_by("image_id")
    assert [(r.image_id, r.miou, r.pixel_accuracy, r.pixels) for r in rows] == [
        ("a", 0.9, 0.95, 100), ("b", 0.2, 0.5, 100), ("c", None, None, 0)]
    assert rows[1].confusions == {"1,0": 40, "0,1": 10}


def test_evaluating_the_same_step_again_replaces_its_scores(reporter):
    """A redelivered or resumed run evaluates the step again: nothing is duplicated, nothing stale kept."""
    reporter.log_evaluation(3, result(3, SCORES))

    reporter.log_evaluation(3, result(3, [ImageScore("a", 0.5, 0.6, 100, [])]))

    assert Evaluation.objects.filter(experiment=reporter.experiment).count() == 1
    assert list(ImageScoreRow.objects.filter(evaluation__experiment=reporter.experiment)
                .values_list("image_id", "miou")) == [("a", 0.5)]


def test_samples_are_stored_as_an_image_and_grey_index_masks(reporter):
    image = torch.arange(12, dtype=torch.uint8).reshape(3, 2, 2) * 20
    reporter.log_evaluation(3, result(3, SCORES))

    reporter.log_predictions(3, [PredictionSample("a", image, TRUTH, PREDICTION)])
    reporter.log_predictions(6, [PredictionSample("a", image, TRUTH, 1 - PREDICTION)])

    [sample] = Evaluation.objects.get(experiment=reporter.experiment, step=3).predictions
    assert set(sample) == {"id", "image", "ground_truth", "prediction"}  # no baked strip any more
    root = settings.MEDIA_ROOT
    with Image.open(f"{root}/{sample['ground_truth']}") as truth, Image.open(f"{root}/{sample['prediction']}") as pred:
        assert np.array_equal(np.array(truth), TRUTH.numpy()) and np.array_equal(np.array(pred), PREDICTION.numpy())
        assert np.array_equal(np.array(truth.convert("RGB"))[..., 1], TRUTH.numpy())  # what the canvas reads
    with Image.open(f"{root}/{sample['image']}") as stored:
        assert np.array_equal(np.array(stored), image.permute(1, 2, 0).numpy())
    assert sample["prediction"].endswith("step_0000003/a.png") and sample["image"].endswith("images/a.png")
