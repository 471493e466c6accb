"""Comments, tags and stars on experiments and sweeps: the rules, over the API and on the pages."""
from html.parser import HTMLParser

import pytest

from tests.conftest import PASSWORD, TINY_RUN
from webapp.accounts.models import ApiToken
from webapp.experiments.launch import launch_experiment
from webapp.review.markdown import render
from webapp.review.models import MAX_TAGS, Comment, Star, Tag

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "![pixel](https://tracker.example/p.png)",
    '<a href="https://example.org" onclick="alert(1)">x</a>',
    "<svg onload=alert(1)>",
    "[x](JaVaScRiPt:alert(1))",
    "<iframe src=https://example.org></iframe>",
]


@pytest.fixture
def experiment(dataset, team_users):
    return launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])


@pytest.fixture
def sweep(dataset, team_users):
    from webapp.sweeps.services import launch_sweep

    base = {k: v for k, v in TINY_RUN.items() if k != "labeled"}
    return launch_sweep(dataset, {"methods": ["supervised", "cps"], "budgets": ["1/2"], "seeds": [0], "config": base},
                        team_users["alice"], "grid")


def auth(user):
    return {"HTTP_AUTHORIZATION": f"Token {ApiToken.issue(user, 't')[1]}"}


class Elements(HTMLParser):
    """The elements and attributes a browser would build from some HTML."""

    def __init__(self, html: str):
        super().__init__()
        self.found: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_never_makes_script_images_or_handlers(text):
    for tag, attributes in Elements(render(text)).found:
        assert tag not in ("script", "img", "svg", "iframe"), (text, tag)
        assert not any(name.startswith("on") for name in attributes), (text, attributes)
        assert not attributes.get("href", "").strip().lower().startswith("javascript"), (text, attributes)


def test_markdown_keeps_what_reviewers_write():
    html = render("**best** run, see [the paper](https://arxiv.org/abs/2208.09910)\n\n"
                  "| a | b |\n|-|-|\n| 1 | 2 |\n\n`code`")
    assert "<strong>best</strong>" in html and "<table>" in html and "<code>code</code>" in html
    assert '<a href="https://arxiv.org/abs/2208.09910" rel="noopener noreferrer nofollow">the paper</a>' in html


@pytest.mark.parametrize("kind", ["experiments", "sweeps"])
def test_members_and_reviewers_comment_over_the_api(client, team_users, experiment, sweep, kind):
    target = experiment if kind == "experiments" else sweep
    url = f"/api/v1/{kind}/{target.pk}/comments/"

    made = client.post(url, {"body": "**looks** good"}, content_type="application/json", **auth(team_users["alice"]))
    reply = client.post(url, {"body": "agreed"}, content_type="application/json", **auth(team_users["bob"]))

    assert made.status_code == 201 and reply.status_code == 201, (made.json(), reply.json())
    assert made.json()["html"].startswith("<p><strong>looks</strong>")
    thread = client.get(url, **auth(team_users["bob"])).json()
    assert [(c["author"], c["body"]) for c in thread] == [("alice", "**looks** good"), ("bob", "agreed")]
    assert client.get(url, **auth(team_users["charlie"])).status_code == 404
    assert client.post(url, {"body": "x"}, content_type="application/json",
                       **auth(team_users["charlie"])).status_code == 404
    assert Comment.objects.count() == 2


@pytest.mark.parametrize("body, message", [
    ({"body": "   "}, "empty"), ({}, "required"), ({"body": "x" * 10_001}, "10000"), ({"body": "a\x00b"}, "NUL"),
    ({"body": ["list"]}, "string"),
])
def test_a_bad_comment_is_refused_naming_the_body(client, team_users, experiment, body, message):
    response = client.post(f"/api/v1/experiments/{experiment.pk}/comments/", body, content_type="application/json",
                           **auth(team_users["alice"]))
    assert response.status_code == 400, response.content
    assert ("body" in response.json()["fields"]
            and message.lower() in response.json()["fields"]["body"].lower().replace(",", ""))
    assert not Comment.objects.exists()


def test_only_the_author_edits_or_deletes_a_comment(client, team_users, experiment):
    url = f"/api/v1/experiments/{experiment.pk}/comments/"
    comment = client.post(url, {"body": "first"}, content_type="application/json", **auth(team_users["bob"])).json()

    by_other = client.patch(f"/api/v1/comments/{comment['id']}/", {"body": "changed"}, content_type="application/json",
                            **auth(team_users["alice"]))
    assert by_other.status_code == 403 and "author" in by_other.json()["error"]
    assert client.delete(f"/api/v1/comments/{comment['id']}/", **auth(team_users["charlie"])).status_code == 404
    edited = client.patch(f"/api/v1/comments/{comment['id']}/", {"body": "second"}, content_type="application/json",
                          **auth(team_users["bob"]))
    assert edited.status_code == 200 and edited.json()["body"] == "second" and edited.json()["edited_at"]
    assert client.delete(f"/api/v1/comments/{comment['id']}/", **auth(team_users["bob"])).status_code == 204
    assert not Comment.objects.exists()


def test_tags_replace_the_set_and_filter_the_lists(client, team_users, experiment, sweep, dataset):
    other = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    put = client.put(f"/api/v1/experiments/{experiment.pk}/tags/", {"tags": ["baseline", " paper  draft ", "baseline"]},
                     content_type="application/json", **auth(team_users["alice"]))
    assert put.status_code == 200 and put.json() == {"tags": ["baseline", "paper draft"]}
    client.put(f"/api/v1/sweeps/{sweep.pk}/tags/", {"tags": ["baseline"]}, content_type="application/json",
               **auth(team_users["alice"]))

    listed = client.get("/api/v1/experiments/?tag=baseline", **auth(team_users["bob"])).json()
    assert ([e["id"] for e in listed["results"]] == [experiment.pk]
            and listed["results"][0]["tags"] == ["baseline", "paper draft"])
    swept = client.get("/api/v1/sweeps/?tag=baseline", **auth(team_users["bob"])).json()
    assert [s["id"] for s in swept["results"]] == [sweep.pk]
    assert other.pk not in [e["id"] for e in listed["results"]]

    cleared = client.put(f"/api/v1/experiments/{experiment.pk}/tags/", {"tags": []}, content_type="application/json",
                         **auth(team_users["alice"]))
    assert cleared.json() == {"tags": []}
    assert sorted(Tag.objects.values_list("name", flat=True)) == ["baseline"]  # "paper draft" no longer used anywhere


@pytest.mark.parametrize("tags, message", [
    (["<b>x</b>"], "not a tag"), (["x" * 41], "not a tag"), ([f"t{i}" for i in range(MAX_TAGS + 1)], "at most"),
    ("baseline", "list"), ([{"a": 1}], "string"), ([""], "not a tag"),
])
def test_a_bad_tag_is_refused_naming_tags(client, team_users, experiment, tags, message):
    response = client.put(f"/api/v1/experiments/{experiment.pk}/tags/", {"tags": tags}, content_type="application/json",
                          **auth(team_users["alice"]))
    assert response.status_code == 400 and message in response.json()["fields"]["tags"].lower(), response.json()
    assert not Tag.objects.exists()


def test_a_reviewer_stars_but_cannot_tag(client, team_users, experiment):
    bob = auth(team_users["bob"])
    refused = client.put(f"/api/v1/experiments/{experiment.pk}/tags/", {"tags": ["mine"]},
                         content_type="application/json", **bob)
    assert refused.status_code == 403 and not Tag.objects.exists()

    assert client.put(f"/api/v1/experiments/{experiment.pk}/star/", **bob).json() == {"starred": True, "stars": 1}
    assert client.put(f"/api/v1/experiments/{experiment.pk}/star/", **bob).json() == {"starred": True, "stars": 1}
    client.put(f"/api/v1/experiments/{experiment.pk}/star/", **auth(team_users["alice"]))
    seen = client.get(f"/api/v1/experiments/{experiment.pk}/", **bob).json()
    assert (seen["stars"], seen["starred"]) == (2, True)
    starred = client.get("/api/v1/experiments/?starred=true", **bob).json()
    assert [e["id"] for e in starred["results"]] == [experiment.pk]
    assert client.delete(f"/api/v1/experiments/{experiment.pk}/star/", **bob).json() == {"starred": False, "stars": 1}
    assert client.put(f"/api/v1/experiments/{experiment.pk}/star/", **auth(team_users["charlie"])).status_code == 404
    assert Star.objects.count() == 1


def test_the_page_shows_the_thread_as_text_and_its_forms_work(client, team_users, experiment):
    client.login(username="bob", password=PASSWORD)
    hostile = "<script>alert('x')</script> **fine**"
    posted = client.post(f"/review/experiments/{experiment.pk}/comment/", {"body": hostile})
    assert posted.status_code == 302 and posted["Location"].startswith(f"/experiments/{experiment.pk}/#comment-")

    page = client.get(f"/experiments/{experiment.pk}/").content.decode()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; <strong>fine</strong>" in page or \
           "&lt;script&gt;alert('x')&lt;/script&gt; <strong>fine</strong>" in page
    assert "<script>alert" not in page
    assert 'id="tags-form"' not in page  # a reviewer has no tags form
    assert client.post(f"/review/experiments/{experiment.pk}/tags/", {"tags": "x"}).status_code == 403
    client.post(f"/review/experiments/{experiment.pk}/star/", {"starred": "true"})
    assert Star.objects.filter(user=team_users["bob"], experiment=experiment).exists()

    empty = client.post(f"/review/experiments/{experiment.pk}/comment/", {"body": ""}, follow=True)
    assert "the comment is empty" in empty.content.decode() and Comment.objects.count() == 1
    client.logout()
    client.login(username="charlie", password=PASSWORD)
    assert client.post(f"/review/experiments/{experiment.pk}/comment/", {"body": "hi"}).status_code == 404
    assert client.post(f"/review/nothing/{experiment.pk}/comment/", {"body": "hi"}).status_code == 404
    assert client.get(f"/experiments/{experiment.pk}/").status_code == 404


def test_the_lists_filter_by_tag_search_and_status(client, team_users, experiment, dataset):
    from webapp.review.services import set_tags

    other = launch_experiment(dataset, {**TINY_RUN, "method": "cps"}, team_users["alice"], "cps try")
    set_tags(other, team_users["alice"], ["paper"])
    client.login(username="alice", password=PASSWORD)

    def names(query):
        return [e.name for e in client.get(f"/experiments/{query}").context["page"]]

    assert names("?tag=paper") == ["cps try"]
    assert names("?search=cps") == ["cps try"]
    assert set(names("?status=queued")) == {"cps try", experiment.name}
    assert names("?status=running") == []
    assert client.get("/experiments/?dataset=notanumber").status_code == 200  # a bad filter is a message, not a 500
    assert client.get("/experiments/?sort=evil").context["ordering"] == "-created_at"


def test_sweep_and_team_pages(client, team_users, sweep):
    client.login(username="bob", password=PASSWORD)
    listed = client.get("/sweeps/").content.decode()
    assert "grid" in listed and "0 / 2" in listed
    page = client.get(f"/sweeps/{sweep.pk}/").content.decode()
    assert 'id="sweep-table"' in page and 'id="review"' in page and page.count("seed 0") >= 2
    teams = client.get("/teams/").content.decode()
    assert "Vision team" in teams and "alice" in teams and "Viewer (read-only)" in teams and "Other team" not in teams
    client.logout()
    client.login(username="charlie", password=PASSWORD)
    assert client.get(f"/sweeps/{sweep.pk}/").status_code == 404
    assert f'href="/sweeps/{sweep.pk}/"' not in client.get("/sweeps/").content.decode()
