"""The new-experiment form in a real browser: option fields follow the chosen architecture and
method, a set field reaches the run, and a sweep is launched in one submit.

The runs only need to be queued: ``without_worker`` keeps the session's worker from training them.
"""
import re

import pytest

from tests.conftest import SCREENSHOTS, login
from webapp.experiments.models import Experiment
from webapp.sweeps.models import Sweep

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def group(page, kind, entry):
    return page.locator(f'fieldset.option-group[data-kind="{kind}"][data-entry="{entry}"]')


def fill_tiny_run(page):
    """Settings the demo dataset can fill (the worker never trains them)."""
    for field, value in {"iters": "6", "batch_size": "4", "crop_size": "32", "device": "cpu"}.items():
        page.fill(f"#id_{field}", value)
    page.fill("#id_arch__unet__base_width", "4")
    page.fill("#id_arch__unet__depth", "2")


def assert_no_overflow(page, screenshot):
    """Nothing wider than the window, and the two option columns side by side without overlapping;
    the filled form is kept as ``artifacts/e2e/<screenshot>.png`` (the test's own shows the page after it)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{screenshot}.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    arch, method = page.locator("#arch-options").bounding_box(), page.locator("#method-options").bounding_box()
    assert arch["x"] + arch["width"] <= method["x"], (arch, method)
    for fields in page.locator(".option-group:visible .option-fields").all():
        assert fields.evaluate("element => element.scrollWidth <= element.clientWidth")


def test_option_fields_follow_the_choice_and_a_set_option_reaches_the_run(page, live_server, dataset, without_worker):
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/experiments/new/")
    assert group(page, "arch", "unet").is_visible() and group(page, "method", "supervised").is_visible()
    assert group(page, "method", "fixmatch").is_hidden() and group(page, "arch", "ddrnet23_slim").is_hidden()

    # When she picks FixMatch, its fields appear and the supervised baseline's disappear
    page.select_option("#id_method", "fixmatch")
    assert page.locator("#id_method__fixmatch__confidence_threshold").is_visible()
    assert page.locator("#id_method__fixmatch__confidence_threshold").input_value() == "0.95"
    assert page.locator("#id_method__supervised__aux_weight").is_hidden()
    page.select_option("#id_arch", "ddrnet23_slim")
    assert "Hong" in group(page, "arch", "ddrnet23_slim").inner_text()
    assert group(page, "arch", "unet").is_hidden()
    page.select_option("#id_arch", "unet")
    page.select_option("#id_method", "unimatch")  # the method with the most options
    assert_no_overflow(page, "experiment_form_unimatch")
    page.select_option("#id_method", "fixmatch")

    # And sets one option, unticks another and launches
    fill_tiny_run(page)
    page.fill("#id_labeled", "1/2")
    page.fill("#id_method__fixmatch__confidence_threshold", "0.8")
    page.uncheck("#id_method__fixmatch__cutmix")
    page.click("#launch")
    page.wait_for_url(re.compile(r"/experiments/\d+/$"))

    # Then the run's config carries them
    config = Experiment.objects.get().config
    assert config["method"] == "fixmatch" and config["model_options"]["base_width"] == 4
    assert config["method_options"]["confidence_threshold"] == 0.8 and config["method_options"]["cutmix"] is False
    page.watch.assert_clean()


def test_a_two_by_two_sweep_is_launched_in_one_submit(page, live_server, dataset, without_worker):
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/experiments/new/")
    assert page.locator("#sweep-settings").is_hidden()

    # When she switches to a sweep, its settings replace the single run's method, budget and seed
    page.check('input[name="mode"][value="sweep"]')
    assert page.locator("#sweep-settings").is_visible()
    assert page.locator("#id_method").is_hidden() and page.locator("#id_labeled").is_hidden()
    page.fill("#id_sweep_name", "screening")
    for method in ("supervised", "fixmatch"):
        page.check(f'input[name="sweep_methods"][value="{method}"]')
    for budget in ("1/4", "1/2"):
        page.check(f'input[name="sweep_budgets"][value="{budget}"]')
    assert group(page, "method", "supervised").is_visible() and group(page, "method", "fixmatch").is_visible()
    assert group(page, "method", "cps").is_hidden()
    assert page.locator("#sweep-size").inner_text() == "4 runs: 2 methods × 2 label budgets × 1 seed"
    assert_no_overflow(page, "experiment_form_sweep")
    fill_tiny_run(page)
    page.fill("#id_method__fixmatch__confidence_threshold", "0.9")
    page.click("#launch")

    # Then one sweep holds four queued runs, FixMatch's with its threshold
    page.wait_for_url(re.compile(r"/sweeps/\d+/$"))
    assert "Sweep “screening” launched: 4 runs queued." in page.locator(".flash").inner_text()
    sweep = Sweep.objects.get()
    runs = list(sweep.experiments.order_by("pk"))
    assert len(runs) == 4 and all(run.status == "queued" for run in runs)
    assert [run.config["method_options"].get("confidence_threshold") for run in runs] == [None, 0.9, None, 0.9]
    page.watch.assert_clean()


def test_a_sweep_budget_the_dataset_cannot_fill_is_refused_on_the_form(page, live_server, dataset, without_worker):
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/experiments/new/")
    page.check('input[name="mode"][value="sweep"]')
    page.fill("#id_sweep_name", "too many labels")
    page.check('input[name="sweep_methods"][value="supervised"]')
    page.fill("#id_sweep_counts", "100")
    fill_tiny_run(page)
    page.click("#launch")

    # The page comes back in sweep mode with the engine's message beside the budgets
    page.wait_for_load_state()
    budgets = page.locator("#id_sweep_budgets_group")
    assert budgets.is_visible()
    assert ("Run 1 (supervised, labels 100, seed 0): the label budget asks for 100 labelled images"
            in budgets.inner_text())
    assert page.locator("#id_sweep_counts").input_value() == "100"
    assert not Sweep.objects.exists() and not Experiment.objects.exists()
    page.watch.assert_clean(expected_errors=("400 (Bad Request)",))
