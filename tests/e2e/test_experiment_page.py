"""A real browser on the experiment page: a long curve drawn downsampled that reloads at full
resolution when zoomed, events and status that arrive without a reload, the sortable per-class
table, the row-normalised confusion heatmap (a click lists the images behind a cell), and class
names that stay text inside Plotly."""
import pytest

from tests.conftest import TINY_RUN, login, wait_for
from tests.e2e.test_xss import CLASS_NAMES, INJECTED_IDS
from webapp.experiments.image_scores import images_confusing
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import Evaluation, Experiment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LONG_CURVE_STEPS = 20_000

CHART_POINTS = """(id) => {
    const chart = document.getElementById(id);
    return {
        width: chart.clientWidth,
        traces: chart.data.map((trace) => ({ name: trace.name, x: Array.from(trace.x) })),
    };
}"""
HEATMAP_Z = "() => document.getElementById('confusion-heatmap').data[0].z"
# Where the centre of heatmap cell (row, column) is in the viewport, the heatmap scrolled into view.
HEATMAP_CELL = """([row, column]) => {
    const chart = document.getElementById('confusion-heatmap');
    chart.scrollIntoView({ block: 'center' });
    const layout = chart._fullLayout, box = chart.getBoundingClientRect();
    return {
        x: box.left + layout._size.l + layout.xaxis.l2p(column),
        y: box.top + layout._size.t + layout.yaxis.l2p(row),
    };
}"""


def open_experiment(page, live_server, experiment):
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/experiments/{experiment.pk}/")


def stored_evaluation(experiment, class_names, confusion, iou):
    return Evaluation.objects.create(experiment=experiment, step=6, miou=0.5, iou=iou, pixel_accuracy=0.8,
                                     mean_accuracy=0.6, confusion_matrix=confusion, class_names=class_names)


def test_a_long_curve_is_downsampled_and_a_zoom_draws_every_point(page, live_server, team_users, dataset,
                                                                   without_worker):
    from workers.metric_writer import upsert_points

    # Given a run with 20,000 stored loss points
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    upsert_points(experiment.pk, {("loss", step): 1.0 + (step % 7) / 10 for step in range(1, LONG_CURVE_STEPS + 1)})

    # When alice opens its page, the loss chart holds about two points per pixel, over the whole run
    open_experiment(page, live_server, experiment)
    wait_for(lambda: page.evaluate(CHART_POINTS, "loss-chart")["traces"], timeout=30, message="the loss curve")
    overview = page.evaluate(CHART_POINTS, "loss-chart")
    (loss,) = overview["traces"]
    # (about: the page's scrollbar may take a few pixels from the chart after it was sized)
    assert 100 < len(loss["x"]) <= 2.1 * overview["width"]
    assert loss["x"][0] < 30 and loss["x"][-1] > LONG_CURVE_STEPS - 30  # each bucket's extremes, from start to end

    # When she zooms to 200 steps, every one of them is drawn
    page.evaluate("() => Plotly.relayout('loss-chart', {'xaxis.range': [10000, 10199]})")
    wait_for(lambda: page.locator("#loss-chart").get_attribute("data-view") == "10000-10199", timeout=10,
             message="the zoomed range at full resolution")
    (zoomed,) = page.evaluate(CHART_POINTS, "loss-chart")["traces"]
    assert zoomed["x"] == list(range(10_000, 10_200))

    # And a reset goes back to the overview
    page.evaluate("() => Plotly.relayout('loss-chart', {'xaxis.autorange': true})")
    wait_for(lambda: page.locator("#loss-chart").get_attribute("data-view") == "overview", timeout=10,
             message="the overview again")
    assert page.evaluate(CHART_POINTS, "loss-chart")["traces"][0]["x"] == loss["x"]
    page.watch.assert_clean()


def test_the_per_class_table_sorts_by_name_and_iou(page, live_server, team_users, dataset, without_worker):
    # Given an evaluation whose classes are neither in name nor in IoU order (one class absent)
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    names = ["road", "building", "sky", "car"]
    stored_evaluation(experiment, names, [[5, 0, 0, 0], [0, 5, 0, 0], [0, 0, 5, 0], [0, 0, 0, 0]],
                      [0.7, 0.2, 0.9, None])
    open_experiment(page, live_server, experiment)
    rows = page.locator("#class-iou tbody tr td:first-child")
    wait_for(lambda: rows.all_text_contents() == names, timeout=30, message="the table in class order")
    assert page.locator("#class-iou thead th").all_text_contents() == ["Class", "IoU"]

    # When she clicks "Class", then "Class" again, then presses Enter on "IoU" (twice)
    page.locator("#class-iou th[data-sort-key=name] button").click()
    assert rows.all_text_contents() == ["building", "car", "road", "sky"]
    assert page.locator("#class-iou th[data-sort-key=name]").get_attribute("aria-sort") == "ascending"
    page.locator("#class-iou th[data-sort-key=name] button").click()
    assert rows.all_text_contents() == ["sky", "road", "car", "building"]
    assert page.locator("#class-iou th[data-sort-key=name]").get_attribute("aria-sort") == "descending"
    page.locator("#class-iou th[data-sort-key=iou] button").focus()
    page.keyboard.press("Enter")
    assert rows.all_text_contents() == ["building", "road", "sky", "car"]  # the class without an IoU last
    assert page.locator("#class-iou tbody tr td:nth-child(2)").all_text_contents() == ["20.0", "70.0", "90.0", "—"]
    page.keyboard.press("Enter")  # the button kept the focus
    assert rows.all_text_contents() == ["sky", "road", "building", "car"]
    assert page.locator("#class-iou th[data-sort-key=iou]").get_attribute("aria-sort") == "descending"
    assert page.locator("#class-iou th[data-sort-key=name]").get_attribute("aria-sort") == "none"
    page.watch.assert_clean()


def test_hostile_class_names_stay_text_in_the_heatmap(page, live_server, team_users, dataset, without_worker):
    # Given an evaluation whose class names are HTML payloads
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    size = len(CLASS_NAMES)
    confusion = [[10 if i == j else i + j for j in range(size)] for i in range(size)]
    stored_evaluation(experiment, CLASS_NAMES, confusion, [0.5] * size)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    # When alice opens the page, the heatmap's axes name the classes exactly as typed
    open_experiment(page, live_server, experiment)
    wait_for(lambda: page.locator("#confusion-heatmap g.xtick").count() == size, timeout=30, message="the heatmap")
    assert page.locator("#confusion-heatmap g.xtick text").all_text_contents() == CLASS_NAMES
    assert page.locator("#confusion-heatmap g.ytick text").all_text_contents() == CLASS_NAMES
    # And hovering a cell names both classes as text too
    cell = page.evaluate(HEATMAP_CELL, [1, 4])
    page.mouse.move(cell["x"], cell["y"])
    wait_for(lambda: page.locator("#confusion-heatmap .hovertext").count() == 1, timeout=10, message="the hover label")
    hover = page.locator("#confusion-heatmap .hovertext text").first.text_content()
    assert CLASS_NAMES[1] in hover and CLASS_NAMES[4] in hover and "5 pixels" in hover

    # Then nothing became an element: no injected id, no bold, link or image inside the plot
    for injected in INJECTED_IDS:
        assert page.locator(f"#{injected}").count() == 0
    assert page.locator("#confusion-heatmap b, #confusion-heatmap a, #confusion-heatmap img, "
                        "[onerror], [onload]").count() == 0
    assert page.locator("#confusion-heatmap tspan[style*='bold']").count() == 0
    assert page.locator("#class-iou tbody tr td:first-child").all_text_contents() == CLASS_NAMES
    assert dialogs == []
    page.watch.assert_clean()


def event_kinds(page) -> list[str]:
    return page.locator("#events li").evaluate_all("(items) => items.map((item) => item.dataset.kind)")


def test_events_and_status_arrive_without_a_reload(page, live_server, team_users, dataset, without_worker,
                                                   worker_process):
    # Given a queued run, and its page open before any worker runs
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    open_experiment(page, live_server, experiment)
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    assert event_kinds(page) == ["queued"]
    assert page.locator("#status").inner_text() == "Queued"

    # When a worker starts and trains it
    worker_process.start()

    # Then the page lists "started" after "queued", and shows the worker, then the end of the run
    wait_for(lambda: event_kinds(page)[:2] == ["queued", "started"], timeout=120, message="the started event")
    wait_for(lambda: page.locator("#status").inner_text() == "Succeeded", timeout=120, message="the run to succeed")
    wait_for(lambda: event_kinds(page) == ["queued", "started", "succeeded"], timeout=10, message="the succeeded event")
    assert navigations == []  # never reloaded
    assert worker_process.name in page.locator("#worker").inner_text()
    assert page.locator("#heartbeat").inner_text() != "—"
    assert page.locator("#error").is_hidden()
    # The downloads appear once the run has written them, and they download
    for link in ("#download-best", "#download-last", "#download-csv"):
        wait_for(lambda link=link: page.locator(link).is_visible(), timeout=10, message=f"{link} to show")
    csv = page.request.get(live_server.url + page.locator("#download-csv").get_attribute("href"))
    assert csv.ok and csv.text().startswith("name,step,value\n")
    best = page.request.get(live_server.url + page.locator("#download-best").get_attribute("href"))
    assert best.ok and len(best.body()) > 100
    page.watch.assert_clean()


def test_the_heatmap_is_row_normalised_and_a_click_lists_the_images(page, live_server, team_users, dataset,
                                                                   celery_worker):
    # Given a finished tiny run
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    wait_for(lambda: Experiment.objects.get(pk=experiment.pk).is_finished, timeout=180, message="the run to finish")
    experiment.refresh_from_db()
    assert experiment.status == "succeeded", experiment.error
    last = experiment.evaluations.order_by("-step").first()

    # When alice opens its page, the heatmap draws each true class's row in percent of its pixels
    open_experiment(page, live_server, experiment)
    wait_for(lambda: page.locator("#confusion-heatmap g.xtick").count() == len(last.class_names), timeout=30,
             message="the heatmap")
    z = page.evaluate(HEATMAP_Z)
    for counts, shares in zip(last.confusion_matrix, z, strict=True):
        total = sum(counts)
        if total:
            assert sum(shares) == pytest.approx(100)
            assert shares == pytest.approx([100 * count / total for count in counts])
        else:
            assert shares == [None] * len(counts)
    assert page.locator("#confusion-heatmap g.xtick text").all_text_contents() == last.class_names

    # And a click on an off-diagonal cell lists the images where that confusion is largest
    true_class, predicted_class = max(((i, j) for i, row in enumerate(last.confusion_matrix)
                                       for j, count in enumerate(row) if i != j and count),
                                      key=lambda cell: last.confusion_matrix[cell[0]][cell[1]])
    cell = page.evaluate(HEATMAP_CELL, [true_class, predicted_class])
    page.mouse.click(cell["x"], cell["y"])
    expected = [score.image_id for score in images_confusing(last, true_class, predicted_class)[:20]]
    wait_for(lambda: page.locator("#confusion-images li button").all_text_contents() == expected, timeout=10,
             message="the images of that confusion")
    title = page.locator("#confusion-images-title").text_content()
    assert last.class_names[true_class] in title and last.class_names[predicted_class] in title
    page.watch.assert_clean()
