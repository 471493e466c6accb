"""Team review in a real browser: a comment with a script in its markdown does not run, tags
filter the list, a star sticks, a reviewer comments but cannot launch, and another team's
user finds none of it."""
import pytest

from tests.conftest import TINY_RUN, login
from webapp.experiments.launch import launch_experiment
from webapp.review.models import Comment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HOSTILE_MARKDOWN = "**CPS wins** at 1/16 <script>alert(1)</script> <img src=x onerror=alert(2) id=injected>\n\n" \
                   "[evil](javascript:alert(3)) and [the paper](https://arxiv.org/abs/2106.01226)"


def test_comment_tag_star_and_filter(page, live_server, team_users, dataset, without_worker):
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"], "cps at 1/16")
    other = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"], "untagged run")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/experiments/{experiment.pk}/")

    page.fill("#comment-body", HOSTILE_MARKDOWN)
    page.click("#comment-form button[type=submit]")
    body = page.locator(".comment-body").first
    body.wait_for()
    assert body.locator("strong").inner_text() == "CPS wins"
    assert "<script>alert(1)</script>" in body.inner_text()  # shown as text
    assert page.locator("#injected").count() == 0 and body.locator("script, img").count() == 0
    assert body.locator("a").get_attribute("href") == "https://arxiv.org/abs/2106.01226"
    assert body.locator("a").count() == 1  # the javascript: link stayed text
    assert dialogs == []

    page.fill("#tags-form input[name=tags]", "paper, cps")
    page.click("#tags-form button[type=submit]")
    assert page.locator("#tags .tag").all_inner_texts() == ["cps", "paper"]
    page.click("#star-button")
    assert page.locator("#star-button").inner_text().strip() == "★ Starred"
    assert page.locator("#star-count").inner_text() == "1 star"

    page.click("#tags .tag >> text=paper")  # a tag links to the list filtered by it
    page.wait_for_url("**/experiments/?tag=paper")
    rows = page.locator("#experiments tbody tr[data-id]")
    assert rows.count() == 1 and rows.first.get_attribute("data-id") == str(experiment.pk)
    assert "★" in rows.first.inner_text()
    page.fill("#filters input[name=search]", "untagged")
    page.fill("#filters input[name=tag]", "")
    page.click("#filters button[type=submit]")
    assert [r.get_attribute("data-id") for r in page.locator("#experiments tbody tr[data-id]").all()] == [str(other.pk)]
    page.watch.assert_clean()


def test_a_reviewer_comments_but_cannot_launch_and_another_team_sees_nothing(page, live_server, team_users, dataset,
                                                                             without_worker, browser):
    from webapp.sweeps.services import launch_sweep

    base = {k: v for k, v in TINY_RUN.items() if k != "labeled"}
    sweep = launch_sweep(dataset, {"methods": ["supervised", "cps"], "budgets": ["1/4", "1/2"], "seeds": [0],
                                   "config": base}, team_users["alice"], "cps vs supervised")
    login(page, live_server, "bob")
    page.goto(f"{live_server.url}/sweeps/{sweep.pk}/")
    assert page.locator("#sweep-table tbody tr").count() == 2
    assert page.locator("#sweep-runs tbody tr").count() == 4
    page.locator("#budget-chart .main-svg").first.wait_for()  # the plot was drawn
    assert page.locator("#tags-form").count() == 0  # reviewers do not tag
    page.fill("#comment-body", "Why is *cps* below at 1/4?")
    page.click("#comment-form button[type=submit]")
    assert page.locator(".comment-body em").inner_text() == "cps"
    assert Comment.objects.get().author == team_users["bob"]
    page.goto(f"{live_server.url}/experiments/new/")
    assert page.locator("select[name=dataset] option").count() == 0  # no dataset bob may launch on
    page.goto(f"{live_server.url}/teams/")
    assert "Viewer (read-only)" in page.locator(f"#team-{team_users['team'].pk}").inner_text()
    page.watch.assert_clean()

    outsider = browser.new_context().new_page()
    login(outsider, live_server, "charlie")
    run = sweep.experiments.first()
    for path in (f"/sweeps/{sweep.pk}/", f"/experiments/{run.pk}/"):
        assert outsider.goto(f"{live_server.url}{path}").status == 404, path
    outsider.goto(f"{live_server.url}/sweeps/")
    assert "cps vs supervised" not in outsider.content()
    outsider.context.close()
