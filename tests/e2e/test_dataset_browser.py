"""The dataset pages in a real browser: an upload shows its progress and the server's verdict
beside the field, and the sample grid overlays masks that follow the class toggles and the
opacity slider."""
import io
import re
import zipfile

import numpy as np
import pytest

from tests.conftest import login
from tests.webapp.test_dataset_upload import png
from webapp.datasets.models import Dataset

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

#: Upload speed while the good zip is sent, so that the progress bar has several steps to show.
THROTTLED_BYTES_PER_SECOND = 1_000_000


def noisy_zip(count: int = 24, side: int = 96) -> bytes:
    """About 700 KB that does not compress: noise images with two-class masks, stored uncompressed."""
    random = np.random.default_rng(0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for i in range(count):
            archive.writestr(f"images/{i:02d}.png", png(random.integers(0, 256, (side, side, 3))))
            mask = np.zeros((side, side))
            mask[: side // 2] = 1
            archive.writestr(f"masks/{i:02d}.png", png(mask))
    return buffer.getvalue()


def bad_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("images/a.png", png(np.zeros((16, 16, 3))))
        archive.writestr("masks/a.png", png(np.zeros((8, 16))))
    return buffer.getvalue()


#: Reports every change of the upload status (its state, the bar's value and maximum, the
#: text) to the test, which keeps them after the page has moved on to the new dataset.
RECORD_UPLOAD = """() => {
    const status = document.getElementById('upload-status');
    const progress = document.getElementById('upload-progress');
    const state = document.getElementById('upload-state');
    new MutationObserver(() => window.recordUpload(status.dataset.state || '', progress.value, progress.max,
                                                    state.textContent))
        .observe(status, {attributes: true, childList: true, subtree: true, characterData: true});
}"""


def choose_zip(page, name: str, data: bytes) -> None:
    page.fill("#id_name", name)
    page.set_input_files("#id_archive", files=[{"name": f"{name}.zip", "mimeType": "application/zip", "buffer": data}])


def test_a_good_upload_shows_bytes_sent_then_validating_then_opens_the_dataset(page, live_server, team_users):
    seen = []
    page.expose_function("recordUpload", lambda *change: seen.append(change))
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/datasets/upload/")
    assert "Largest upload:" in page.locator("#upload-limit").inner_text()
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": THROTTLED_BYTES_PER_SECOND})
    data = noisy_zip()
    choose_zip(page, "noise", data)
    page.evaluate(RECORD_UPLOAD)

    page.click("#upload-button")
    page.wait_for_url(re.compile(r"/datasets/\d+/$"), timeout=60_000)

    dataset = Dataset.objects.get(name="noise")
    assert page.url == f"{live_server.url}/datasets/{dataset.pk}/" and dataset.num_labeled == 24
    sending = [(value, total) for state, value, total, _ in seen if state == "sending" and 0 < value < total]
    assert len(sending) >= 2, seen  # the bar moved while the file was sent
    assert any(text.endswith(" sent") and " of " in text for _, _, _, text in seen)
    validating = [(value, total, text) for state, value, total, text in seen if state == "validating"]
    assert validating and validating[-1][0] == validating[-1][1] >= len(data), seen
    assert "validating" in validating[-1][2]
    page.watch.assert_clean()


def test_a_refused_upload_names_the_file_inside_the_zip_beside_the_field(page, live_server, team_users):
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/datasets/upload/")
    choose_zip(page, "broken", bad_zip())

    page.click("#upload-button")

    errors = page.locator(".field:has(#id_archive) #upload-errors")
    errors.wait_for(timeout=30_000)
    assert "masks/a.png" in errors.locator("code").inner_text()
    assert "mask is 16x8 but its image images/a.png is 16x16" in errors.inner_text()
    assert page.url == f"{live_server.url}/datasets/upload/" and page.input_value("#id_name") == "broken"
    assert page.locator("#upload-status").get_attribute("data-state") == "answered"
    assert not Dataset.objects.filter(name="broken").exists()
    page.watch.assert_clean(expected_errors=("400 for POST",))  # the refused upload above


#: A digest of every sample canvas's pixels, and the pixels of the first one.
CANVAS_PIXELS = """() => Array.from(document.querySelectorAll('#sample-grid canvas')).map((canvas) =>
    Array.from(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data))"""

#: The first sample's image drawn alone, as the canvas shows it with the mask at opacity 0.
FIRST_IMAGE = """async () => {
    const canvas = document.querySelector('#sample-grid canvas');
    const image = new Image();
    image.src = canvas.dataset.image;
    await image.decode();
    const plain = document.createElement('canvas');
    plain.width = canvas.width;
    plain.height = canvas.height;
    const context = plain.getContext('2d');
    context.drawImage(image, 0, 0);
    return Array.from(context.getImageData(0, 0, plain.width, plain.height).data);
}"""


def test_the_overlay_follows_the_class_toggles_and_the_opacity_slider(page, live_server, dataset):
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/datasets/{dataset.pk}/")
    canvases = page.locator("#sample-grid canvas")
    page.wait_for_function("""() => { const all = document.querySelectorAll('#sample-grid canvas');
        return all.length > 0 && Array.from(all).every((c) => c.dataset.drawn === 'true'); }""")
    assert canvases.count() == 12
    overlaid = page.evaluate(CANVAS_PIXELS)

    page.locator("#overlay-toggles input[data-class='1']").uncheck()
    without_class_1 = page.evaluate(CANVAS_PIXELS)
    page.locator("#overlay-toggles input[data-class='1']").check()

    assert without_class_1 != overlaid
    assert page.evaluate(CANVAS_PIXELS) == overlaid  # toggled back on, the same picture
    page.locator("#overlay-opacity").focus()
    page.keyboard.press("Home")  # opacity 0: the images alone
    assert page.locator("#overlay-opacity").input_value() == "0"
    assert page.evaluate(CANVAS_PIXELS)[0] == page.evaluate(FIRST_IMAGE)
    page.keyboard.press("End")
    assert page.evaluate(CANVAS_PIXELS) not in (overlaid, without_class_1)
    page.watch.assert_clean()
