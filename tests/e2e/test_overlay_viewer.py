"""A real browser reviews a finished run's predictions: the overlay viewer drawn from the
stored masks, the per-image grid hardest first, and the images behind a confusion."""
import numpy as np
import pytest
from django.conf import settings
from PIL import Image

from tests.conftest import TINY_RUN, login, wait_for
from webapp.experiments.image_scores import images_confusing, ordered_scores
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import Experiment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CANVAS_SUM = """(id) => {
    const canvas = document.getElementById(id);
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0;
    for (let i = 0; i < data.length; i++) sum += data[i] * ((i % 97) + 1);
    return canvas.width ? sum : -1;
}"""


def shown(page) -> str:
    return page.locator("#overlay-viewer").get_attribute("data-shown") or ""


def most_common_class(relative_path: str) -> int:
    with Image.open(f"{settings.MEDIA_ROOT}/{relative_path}") as mask:
        labels = np.array(mask).ravel()
    labels = labels[labels != 255]
    return int(np.bincount(labels).argmax())


def test_the_viewer_steps_through_samples_steps_and_the_hardest_images(page, live_server, team_users, dataset,
                                                                        celery_worker):
    # Given a finished tiny run (evaluations at steps 3 and 6)
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    wait_for(lambda: Experiment.objects.get(pk=experiment.pk).is_finished, timeout=180, message="the run to finish")
    experiment.refresh_from_db()
    assert experiment.status == "succeeded", experiment.error
    first, last = experiment.evaluations.order_by("step")
    samples = last.predictions

    # When alice opens its page, the viewer shows the last step's first sample
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/experiments/{experiment.pk}/")
    wait_for(lambda: shown(page) == f"{last.step}:{samples[0]['id']}", timeout=30, message="the first sample")
    assert page.locator("#viewer-caption").text_content() == samples[0]["id"]
    assert page.locator("#viewer-position").text_content() == f"sample 1 of {len(samples)}"
    assert page.locator("#viewer-class-toggles input").count() == len(last.class_names)
    assert page.locator("#viewer-legend li").count() == 4

    # Toggling off the class that covers most of the truth changes the truth panel's pixels
    before = page.evaluate(CANVAS_SUM, "viewer-truth")
    page.locator(f"#viewer-class-toggles input[data-class='{most_common_class(samples[0]['ground_truth'])}']").uncheck()
    wait_for(lambda: page.evaluate(CANVAS_SUM, "viewer-truth") not in (before, -1), timeout=10,
             message="the truth panel to drop the class")

    # → steps to the next sample
    page.keyboard.press("ArrowRight")
    wait_for(lambda: shown(page) == f"{last.step}:{samples[1]['id']}", timeout=10, message="the next sample")
    assert page.locator("#viewer-position").text_content() == f"sample 2 of {len(samples)}"

    # The step slider goes back to the first evaluation, keeping the image
    page.locator("#viewer-step").fill("0")
    wait_for(lambda: shown(page) == f"{first.step}:{samples[1]['id']}", timeout=10, message="the first evaluation")
    assert page.locator("#viewer-step-label").text_content() == f"step {first.step}"

    # The per-image grid, hardest first, opens the hardest image in the viewer at that step
    page.select_option("#image-order", "miou")
    hardest = [score.image_id for score in ordered_scores(first, "miou")]
    wait_for(lambda: page.locator("#image-grid .tile-id").all_text_contents() == hardest, timeout=10,
             message="the grid ordered hardest first")
    page.locator("#image-grid .tile button").first.click()
    wait_for(lambda: shown(page) == f"{first.step}:{hardest[0]}", timeout=10, message="the hardest image opened")
    assert page.locator("#viewer-note").text_content() == ""

    # A confusion-matrix cell (of the latest evaluation) lists the images where that confusion is largest
    cell = page.locator("#confusion td.clickable").first
    true_class = int(cell.get_attribute("data-true-class"))
    predicted_class = int(cell.get_attribute("data-predicted-class"))
    cell.click()
    expected = [score.image_id for score in images_confusing(last, true_class, predicted_class)[:20]]
    wait_for(lambda: page.locator("#confusion-images li button").all_text_contents() == expected, timeout=10,
             message="the images of that confusion")
    assert last.class_names[true_class] in page.locator("#confusion-images-title").text_content()
    page.watch.assert_clean()
