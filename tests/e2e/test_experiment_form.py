"""The new-experiment form in a real browser: options follow the chosen architecture and method."""
import json

import pytest

from tests.conftest import login
from webapp.experiments.models import Experiment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_options_follow_the_choice_and_launch(page, live_server, dataset):
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/experiments/new/")
    page.select_option("#id_arch", "ddrnet23_slim")
    assert "Hong" in page.locator("#arch-paper").inner_text()
    page.select_option("#id_arch", "unet")
    page.locator("#arch-options tr[data-name=base_width]").click()
    assert json.loads(page.locator("#id_model_options").input_value()) == {"base_width": 32}
    page.fill("#id_model_options", '{"base_width": 4, "depth": 2}')
    page.select_option("#id_method", "unimatch")
    assert "confidence_threshold" in page.locator("#method-options").inner_text()
    page.fill("#id_iters", "5")
    page.fill("#id_device", "cpu")
    page.fill("#id_crop_size", "32")
    page.fill("#id_batch_size", "2")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{live_server.url}/experiments/*/")
    experiment = Experiment.objects.get()
    assert experiment.config["method"] == "unimatch" and experiment.config["model_options"]["base_width"] == 4
    assert "unimatch" in page.locator("h1").inner_text()
