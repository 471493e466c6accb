"""Stored XSS: names a user types (class names, image file names, dataset and run names)
reach every page that shows them as literal text, never as markup or script."""
import json
import re

import pytest

from tests.conftest import ROOT, TINY_RUN, login, wait_for, zip_folder
from webapp.experiments.models import Experiment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ARTIFACTS = ROOT / "artifacts" / "e2e"

# Image stems (no `/` in a file name, no `.` before the suffix); splits/val.txt puts
# them in the validation split, whose first images are the prediction samples.
IMAGE_STEMS = ['<img src=x onerror=alert(1) id=injected-stem-img>', '"><svg id=injected-stem-svg onload=alert(2)>']
# One name per class of the demo masks (background, disc, box, triangle, ring).
CLASS_NAMES = ["<img src=x onerror=alert(document.domain)>", "<b id=injected-b>bold</b>",
               '"><svg id=injected-svg onload=alert(5)>', "&lt;b&gt; & 'quoted'", "</td></tr></table><i id=injected-i>"]
DATASET_NAME = "<script>alert(3)</script>"
DESCRIPTION = "<img src=x onerror=alert(4) id=injected-img>"
EXPERIMENT_NAME = '"><img src=x onerror=alert(6) id=injected-exp>'
INJECTED_IDS = ["injected-stem-img", "injected-stem-svg", "injected-b", "injected-svg", "injected-i", "injected-img",
                "injected-exp"]


def hostile_dataset(folder):
    """The demo layout with HTML in two image+mask stems, in the val split and in classes.json."""
    from engine.data.builtin.demo import CLASSES, generate_demo

    generate_demo(folder, num_images=12, num_unlabeled=4, size=32)
    for i, stem in enumerate(IMAGE_STEMS):
        for kind in ("images", "masks"):
            (folder / kind / f"scene_{i:05d}.png").rename(folder / kind / f"{stem}.png")
    (folder / "splits").mkdir()
    (folder / "splits" / "val.txt").write_text("\n".join([*IMAGE_STEMS, "scene_00002", "scene_00003"]) + "\n")
    classes = [{"name": name, "color": color} for name, (_, color) in zip(CLASS_NAMES, CLASSES, strict=True)]
    (folder / "classes.json").write_text(json.dumps({"classes": classes, "ignore_index": 255}))
    return folder


def assert_only_text(page, dialogs, name):
    """Nothing injected ran or became an element; the page is kept as a screenshot."""
    page.wait_for_load_state("networkidle")
    page.screenshot(path=ARTIFACTS / f"xss_{name}.png", full_page=True)
    assert dialogs == [], f"{name}: a payload ran and opened {dialogs}"
    for injected in INJECTED_IDS:
        assert page.locator(f"#{injected}").count() == 0, f"{name}: #{injected} was injected"
    assert page.locator("img[src=x], svg[onload], [onerror], [onload]").count() == 0, f"{name}: markup was injected"
    assert not page.evaluate("() => [...document.scripts].some((s) => s.textContent.includes('alert('))")


def test_user_data_is_shown_as_text_on_every_page(page, live_server, team_users, celery_worker, tmp_path):
    # Given a dataset whose names are HTML payloads, and a browser that records any dialog
    archive = tmp_path / "hostile.zip"
    archive.write_bytes(zip_folder(hostile_dataset(tmp_path / "hostile")))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    login(page, live_server, "alice")

    # When alice uploads it through the form
    page.goto(f"{live_server.url}/datasets/upload/")
    page.fill("#id_name", DATASET_NAME)
    page.fill("#id_description", DESCRIPTION)
    page.set_input_files("#id_archive", archive)
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/datasets/\d+/$"))
    # Then the dataset page shows every name as it was typed
    assert_only_text(page, dialogs, "dataset_detail")
    assert page.locator("h1").text_content() == DATASET_NAME
    assert DESCRIPTION in page.locator("p.muted").first.text_content()
    names = page.locator("#class-table tbody tr td:nth-child(2) input")
    assert names.evaluate_all("(inputs) => inputs.map((input) => input.value)") == CLASS_NAMES
    assert [text.strip() for text in page.locator("#overlay-toggles label").all_text_contents()] == CLASS_NAMES

    page.goto(f"{live_server.url}/datasets/")
    assert_only_text(page, dialogs, "dataset_list")
    assert page.locator("table.table tbody td a").all_text_contents() == [DATASET_NAME]

    # When she launches a tiny run on it through the new-experiment form
    page.goto(f"{live_server.url}/experiments/new/")
    assert_only_text(page, dialogs, "experiment_new")
    assert page.locator("#id_dataset option").all_text_contents() == [DATASET_NAME]
    assert page.locator('fieldset.option-group[data-entry="unet"] input').count() > 0
    page.fill("#id_name", EXPERIMENT_NAME)
    page.click("details summary")  # eval_every and log_every are under "Advanced"
    for field, value in TINY_RUN.items():
        if field == "arch":
            page.select_option("#id_arch", value)
        elif field == "model_options":
            for option, option_value in value.items():
                page.fill(f"#id_arch__{TINY_RUN['arch']}__{option}", str(option_value))
        else:
            page.fill(f"#id_{field}", str(value))
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/experiments/\d+/$"))
    experiment = Experiment.objects.get()
    wait_for(lambda: Experiment.objects.get(pk=experiment.pk).is_finished, timeout=180, message="the run to finish")
    experiment.refresh_from_db()
    assert experiment.status == "succeeded", experiment.error
    latest = experiment.evaluations.order_by("-step").first()
    shown_stems = sorted(IMAGE_STEMS)  # the validation split is read in sorted order
    assert [p["id"] for p in latest.predictions][:2] == shown_stems

    # Then the live page renders the evaluation and the predictions as text
    page.reload()
    image_ids = sorted(latest.image_scores.values_list("image_id", flat=True))
    wait_for(lambda: page.locator("#viewer-caption").text_content() == shown_stems[0]
             and page.locator("#image-grid figure").count() == len(image_ids), timeout=30,
             message="the live page to render the overlay viewer and the per-image grid")
    assert_only_text(page, dialogs, "experiment_detail")
    assert page.locator("h1").text_content() == EXPERIMENT_NAME
    assert page.title() == f"{EXPERIMENT_NAME} · SegLab"
    assert page.locator("#class-iou tbody tr td:first-child").all_text_contents() == CLASS_NAMES
    assert page.locator("#class-iou thead th").all_text_contents() == ["Class", "IoU"]
    # The confusion matrix: class names as row and column headers, each true class's row in percent
    assert page.locator("#confusion thead th").all_text_contents() == ["truth \\ prediction", *CLASS_NAMES]
    assert page.locator("#confusion tbody th").all_text_contents() == CLASS_NAMES
    for row in page.locator("#confusion tbody tr").all():
        cells = [cell for cell in row.locator("td").all_text_contents() if cell != "—"]
        assert not cells or abs(sum(float(cell) for cell in cells) - 100) < 1
    best = Experiment.objects.get(pk=experiment.pk).best_miou
    assert page.locator("#best-miou").text_content() == f"{100 * best:.1f}"  # percent, as the list shows it
    # The overlay viewer and the per-image grid: class names and image ids as text
    assert page.locator("#viewer-class-toggles label").all_text_contents() == CLASS_NAMES
    assert sorted(page.locator("#image-grid .tile-id").all_text_contents()) == image_ids
    images = page.locator("#image-grid img")
    assert images.count() > 0 and all(images.nth(i).get_attribute("alt") in image_ids for i in range(images.count()))
    wait_for(lambda: page.evaluate("() => [...document.querySelectorAll('#image-grid img')]"
                                   ".every((i) => i.naturalWidth > 0)"),
             timeout=10, message="the grid's thumbnails to load")
    page.locator("#confusion td.clickable").first.click()
    wait_for(lambda: page.locator("#confusion-images li").count() > 0, timeout=10, message="the confusion's images")
    assert_only_text(page, dialogs, "experiment_detail_confusion")

    page.goto(f"{live_server.url}/experiments/")
    assert_only_text(page, dialogs, "experiment_list")
    assert page.locator("#experiments tbody td:nth-child(2) a").all_text_contents() == [EXPERIMENT_NAME]
    assert page.locator("#experiments tbody td:nth-child(9)").all_text_contents() == [DATASET_NAME]
