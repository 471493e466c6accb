"""Per-image scores: each validation image's own mIoU, pixel accuracy and largest confusions."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.data.transforms import denormalize
from engine.evaluation import HARDEST_SAMPLES, PREDICTION_SAMPLES, Inference, evaluate
from engine.metrics import IGNORE_INDEX, confusion_matrix, image_scores, segmentation_scores
from engine.reporting import EvaluationResult

pytestmark = pytest.mark.usefixtures("single_thread")


def test_hand_computed_image_scores_with_an_ignored_pixel():
    # Given a 2x4 image of 3 classes with one ignored pixel
    truth = torch.tensor([[0, 0, 1, 1], [2, 2, 1, IGNORE_INDEX]])
    prediction = torch.tensor([[0, 1, 1, 1], [1, 1, 0, 2]])

    # When its own scores are computed
    score = image_scores(confusion_matrix(prediction, truth, 3))

    # Then (the ignored pixel's prediction does not count): class 0: tp 1, truth 2, predicted 2
    # -> 1/3; class 1: tp 2, truth 3, predicted 5 -> 2/6; class 2: tp 0 -> 0. 3 of 7 pixels right.
    assert score["miou"] == pytest.approx((1 / 3 + 1 / 3 + 0) / 3)
    assert score["pixel_accuracy"] == pytest.approx(3 / 7)
    assert score["pixels"] == 7
    # the off-diagonal cells, largest first, ties by (true, predicted): 2->1 twice, 0->1 and 1->0 once
    assert score["confusions"] == [(2, 1, 2), (0, 1, 1), (1, 0, 1)]


def test_classes_absent_from_the_image_are_left_out_of_its_mean():
    truth = torch.tensor([[0, 0, 3, 3]])
    prediction = torch.tensor([[0, 0, 3, 0]])

    score = image_scores(confusion_matrix(prediction, truth, 5))

    # class 0: 2/3, class 3: 1/2; classes 1, 2 and 4 appear nowhere in this image
    assert score["miou"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert score["confusions"] == [(3, 0, 1)]


def test_it_agrees_with_the_set_scores_on_a_single_image():
    generator = torch.Generator().manual_seed(0)
    truth = torch.randint(0, 4, (30, 40), generator=generator)
    prediction = torch.randint(0, 5, (30, 40), generator=generator)
    counts = confusion_matrix(prediction, truth, 6)

    score, reference = image_scores(counts), segmentation_scores(counts)

    assert score["miou"] == pytest.approx(reference["miou"])
    assert score["pixel_accuracy"] == pytest.approx(reference["pixel_accuracy"])


def test_an_image_whose_pixels_are_all_ignored_has_no_score():
    truth = torch.full((2, 2), IGNORE_INDEX)

    score = image_scores(confusion_matrix(torch.zeros(2, 2, dtype=torch.long), truth, 3))

    assert score == {"miou": None, "pixel_accuracy": None, "pixels": 0, "confusions": []}


def test_confusions_are_bounded_for_many_classes():
    # Given 150 classes (ADE20K) and an image where every pixel is some other class
    num_classes = 150
    truth = torch.arange(num_classes * 4) % num_classes
    prediction = (truth + 1 + torch.arange(num_classes * 4) // num_classes) % num_classes

    score = image_scores(confusion_matrix(prediction, truth, num_classes), max_confusions=16)

    assert len(score["confusions"]) == 16
    assert all(true != predicted and pixels == 1 for true, predicted, pixels in score["confusions"])


class Constant(nn.Module):
    """Predicts each image's own fixed map, looked up by its first pixel (the image index; the
    evaluation normalises the uint8 image it is given)."""

    def __init__(self, predictions: list[torch.Tensor], num_classes: int):
        super().__init__()
        self.predictions, self.num_classes = predictions, num_classes

    def forward(self, image):
        index = int(denormalize(image[0])[0, 0, 0])
        return nn.functional.one_hot(self.predictions[index], self.num_classes).permute(2, 0, 1)[None].float()


def test_evaluate_scores_every_image_and_samples_the_first_then_the_hardest():
    # Given 10 images of 2x2: the first 5 right, then 1, 2, 3, 4 and 4 wrong pixels
    num_classes, predictions, items = 2, [], []
    for k in range(10):
        truth = torch.tensor([[0, 1], [0, 1]])
        wrong = torch.zeros(4, dtype=torch.bool)
        wrong[: min(max(k - 4, 0), 4)] = True
        predictions.append(torch.where(wrong.reshape(2, 2), 1 - truth, truth))
        image = torch.full((3, 2, 2), k, dtype=torch.uint8)  # as ValidationDataset gives them
        items.append({"id": f"img{k}", "image": image, "mask": truth.to(torch.uint8)})

    # When they are evaluated
    result, samples = evaluate(Constant(predictions, num_classes), items, num_classes, ["bg", "fg"],
                               torch.device("cpu"), Inference(), step=7)

    # Then every image has its own score, in loader order, and the summary is unchanged
    assert [score.id for score in result.images] == [f"img{k}" for k in range(10)]
    assert [score.pixel_accuracy for score in result.images[:5]] == [1.0, 1.0, 1.0, 1.0, 1.0]
    # img5: (0,0) 0->1: class 0 IoU 1/2, class 1 IoU 2/3
    assert result.images[5].pixel_accuracy == pytest.approx(0.75)
    assert result.images[5].miou == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert result.images[7].miou == pytest.approx((0 + 1 / 4) / 2)  # 3 wrong: class 1 keeps 1 of a union of 4
    assert result.images[9].miou == 0.0 and result.images[9].confusions == [(0, 1, 2), (1, 0, 2)]
    assert result.pixel_accuracy == pytest.approx(sum(s.pixel_accuracy for s in result.images) / 10)
    # and the samples are the first images, then the hardest others, hardest first (ties: earliest)
    ids = [sample.id for sample in samples]
    assert ids[:PREDICTION_SAMPLES] == [f"img{k}" for k in range(PREDICTION_SAMPLES)]
    assert ids[PREDICTION_SAMPLES:] == ["img8", "img9", "img7", "img6"][:HARDEST_SAMPLES]
    assert result.without_images().images == [] and result.images  # checkpoints keep the summary only
    assert torch.equal(samples[0].image, items[0]["image"])  # the sample shows the pixels as they were read


def test_a_saved_result_without_per_image_scores_still_loads():
    """Checkpoints written before per-image scores existed have no ``images`` key."""
    saved = {"step": 1, "miou": 0.5, "iou": [0.5], "pixel_accuracy": 0.5, "mean_accuracy": 0.5, "mean_dice": 0.5,
             "dice": [0.5], "confusion_matrix": [[1]], "class_names": ["a"], "throughput": None}

    assert EvaluationResult(**saved).images == []
