"""The API's contract: its schema, token logins, one error shape for every failure, bounded pages."""
import json

import pytest

from tests.conftest import PASSWORD, TINY_RUN
from webapp.accounts.models import ApiToken
from webapp.experiments.models import Experiment


@pytest.fixture
def token(team_users):
    return ApiToken.issue(team_users["alice"], "tests")[1]


def auth(key):
    return {"HTTP_AUTHORIZATION": f"Token {key}"}


def test_the_schema_is_valid_openapi_3_and_holds_the_engine_config(client, team_users):
    from openapi_spec_validator import validate

    assert client.get("/api/schema/").status_code in (401, 403)  # who is asking is checked here too
    client.login(username="alice", password=PASSWORD)
    response = client.get("/api/schema/?format=json")
    schema = json.loads(response.content)
    validate(schema)
    assert schema["openapi"].startswith("3.")
    config = schema["components"]["schemas"]["ExperimentCreateRequest"]["properties"]["config"]
    assert config["properties"]["seed"]["maximum"] == 2**32 - 1
    assert "unet" in config["properties"]["arch"]["enum"]
    assert config["properties"]["lr"]["type"] == "number"
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_the_interactive_docs_are_served_locally(client, team_users):
    client.login(username="alice", password=PASSWORD)
    page = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in page and "/static/drf_spectacular_sidecar/" in page
    assert "cdn" not in page.lower() and "https://" not in page


def test_a_token_made_on_the_account_page_works_until_revoked(client, team_users):
    client.login(username="alice", password=PASSWORD)
    page = client.post("/account/", {"name": "cluster script"})
    key = page.context["new_key"]
    assert key in page.content.decode() and ApiToken.objects.get().key_hash != key
    client.logout()

    assert client.get("/api/v1/experiments/", **auth(key)).status_code == 200
    client.login(username="alice", password=PASSWORD)
    client.post(f"/account/tokens/{ApiToken.objects.get().pk}/revoke/")
    client.logout()
    refused = client.get("/api/v1/experiments/", **auth(key))
    assert refused.status_code == 401 and refused.json() == {"error": "invalid or revoked token"}
    assert client.get("/api/v1/experiments/").status_code in (401, 403)


def test_another_users_token_cannot_be_revoked(client, team_users):
    charlie_token, _ = ApiToken.issue(team_users["charlie"], "theirs")
    client.login(username="alice", password=PASSWORD)
    assert client.post(f"/account/tokens/{charlie_token.pk}/revoke/").status_code == 404
    assert ApiToken.objects.filter(pk=charlie_token.pk).exists()


@pytest.mark.parametrize("body, content_type", [
    ({"config": "not json"}, None), ({"config": "[1, 2]"}, None), ({}, None),
    (json.dumps({"config": [1, 2]}), "application/json"), (json.dumps({"config": "arch=unet"}), "application/json"),
    (json.dumps({"config": None}), "application/json"),
])
def test_a_config_that_is_not_a_json_object_is_refused_whatever_the_content_type(client, dataset, token, body,
                                                                                 content_type):
    data = ({"dataset": dataset.pk, **body} if isinstance(body, dict)
            else body.replace("{", f'{{"dataset": {dataset.pk}, ', 1))
    kwargs = {"content_type": content_type} if content_type else {}
    response = client.post("/api/v1/experiments/", data, **kwargs, **auth(token))
    assert response.status_code == 400, response.content
    assert "config" in response.json()["fields"]
    assert not Experiment.objects.exists()


def test_a_form_or_multipart_config_written_as_json_launches(client, dataset, token):
    response = client.post("/api/v1/experiments/",
                           {"dataset": dataset.pk, "config": json.dumps({**TINY_RUN, "seed": 7})}, **auth(token))
    assert response.status_code == 201, response.content
    assert Experiment.objects.get().config["seed"] == 7


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_literals_are_refused(client, dataset, token, literal):
    body = f'{{"dataset": {dataset.pk}, "config": {{"lr": {literal}}}}}'
    response = client.post("/api/v1/experiments/", body, content_type="application/json", **auth(token))
    assert response.status_code == 400 and "error" in response.json()
    overflow = f'{{"dataset": {dataset.pk}, "config": {{"lr": 1e999}}}}'
    response = client.post("/api/v1/experiments/", overflow, content_type="application/json", **auth(token))
    assert response.status_code == 400 and "lr" in response.json()["fields"]
    assert not Experiment.objects.exists()


def test_an_oversized_body_gets_the_error_shape(client, dataset, token):
    huge = json.dumps({"dataset": dataset.pk, "config": {"x" * 100: "y" * (11 * 2**20)}})
    response = client.post("/api/v1/experiments/", huge, content_type="application/json", **auth(token))
    assert response.status_code == 413 and "larger than 10 MiB" in response.json()["error"]
    form = client.post("/api/v1/experiments/", {"dataset": dataset.pk, "config": "y" * (11 * 2**20)}, **auth(token))
    assert form.status_code == 413 and "error" in form.json()
    assert not Experiment.objects.exists()


@pytest.mark.parametrize("query, field", [("offset=99999999999999999999", "offset"), ("limit=abc", "limit"),
                                          ("offset=-1", "offset")])
def test_page_parameters_out_of_range_are_a_400_naming_them(client, team_users, token, query, field):
    response = client.get(f"/api/v1/experiments/?{query}", **auth(token))
    assert response.status_code == 400 and field in response.json()["fields"]


def test_a_huge_limit_is_bounded(client, dataset, token):
    response = client.get("/api/v1/experiments/?limit=99999999999999999999999", **auth(token))
    assert response.status_code == 400
    response = client.get("/api/v1/experiments/?limit=100000", **auth(token))
    assert response.status_code == 200 and response.json()["results"] == []


def test_steps_beyond_any_run_are_a_400(client, dataset, token, team_users):
    from webapp.experiments.launch import launch_experiment

    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    for endpoint in ("metrics", "evaluations"):
        response = client.get(f"/api/v1/experiments/{experiment.pk}/{endpoint}/?after_step=10000000000000",
                              **auth(token))
        assert response.status_code == 400 and "after_step" in response.json()["fields"]


def test_unknown_api_paths_answer_in_json(client, token):
    response = client.get("/api/v1/no-such-thing/", **auth(token))
    assert response.status_code == 404 and "no API endpoint" in response.json()["error"]


def test_throttling_answers_429_in_the_error_shape(client, team_users, token, monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import SimpleRateThrottle

    cache.clear()
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "3/min", "anon": "3/min"})
    statuses = [client.get("/api/v1/catalogue/", **auth(token)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/api/v1/catalogue/", **auth(token))
    assert "throttled" in response.json()["error"].lower() and response.has_header("Retry-After")
    cache.clear()


def test_experiments_filter_and_order(client, dataset, token, team_users):
    from webapp.experiments import lifecycle
    from webapp.experiments.launch import launch_experiment

    a = launch_experiment(dataset, {**TINY_RUN, "method": "supervised"}, team_users["alice"])
    b = launch_experiment(dataset, {**TINY_RUN, "method": "fixmatch"}, team_users["alice"])
    Experiment.objects.filter(pk=a.pk).update(best_miou=0.2)
    Experiment.objects.filter(pk=b.pk).update(best_miou=0.4)
    lifecycle.claim_next("cpu", "w")

    def ids(query):
        return [e["id"] for e in client.get(f"/api/v1/experiments/?{query}", **auth(token)).json()["results"]]

    assert ids("method=fixmatch") == [b.pk]
    assert ids("status=running") == [a.pk]
    assert ids("ordering=-best_miou") == [b.pk, a.pk]
    assert ids("owner=alice&arch=unet&ordering=best_miou") == [a.pk, b.pk]
    assert client.get("/api/v1/experiments/?status=exploded", **auth(token)).status_code == 400


@pytest.mark.django_db(transaction=True)
def test_a_finished_run_is_deleted_with_its_files_and_a_running_one_is_refused(client, dataset, team_users,
                                                                               without_worker):
    from webapp.experiments import lifecycle
    from webapp.experiments.launch import launch_experiment

    key = ApiToken.issue(team_users["alice"], "t")[1]
    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    lifecycle.claim_next("cpu", "w")
    refused = client.delete(f"/api/v1/experiments/{experiment.pk}/", **auth(key))
    assert refused.status_code == 400 and "cancel it first" in refused.json()["fields"]["status"]
    lifecycle.fail(experiment.pk, "boom", attempt=1)
    experiment.output_dir.mkdir(parents=True, exist_ok=True)
    (experiment.output_dir / "last.pt").write_bytes(b"x")

    assert client.delete(f"/api/v1/experiments/{experiment.pk}/", **auth(key)).status_code == 204
    assert not Experiment.objects.exists() and not experiment.output_dir.exists()


def test_the_api_keeps_serving_when_the_throttling_cache_is_down(client, team_users, token, settings):
    from django.core.cache import caches

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0"}}  # nothing listens there
    caches._settings = None  # noqa: SLF001 - make the cache handler read the new setting
    if hasattr(caches._connections, "default"):
        del caches._connections.default
    try:
        assert client.get("/api/v1/catalogue/", **auth(token)).status_code == 200
    finally:
        caches._settings = None
        if hasattr(caches._connections, "default"):
            del caches._connections.default


def test_tokens_over_the_api_are_the_users_own(client, team_users, token):
    made = client.post("/api/v1/tokens/", {"name": "second"}, content_type="application/json", **auth(token))
    assert made.status_code == 201 and len(made.json()["key"]) > 30
    listed = client.get("/api/v1/tokens/", **auth(made.json()["key"])).json()["results"]
    assert {t["name"] for t in listed} == {"tests", "second"} and all("key" not in t for t in listed)
    theirs, _ = ApiToken.issue(team_users["charlie"], "theirs")
    assert client.delete(f"/api/v1/tokens/{theirs.pk}/", **auth(token)).status_code == 404
    assert client.delete(f"/api/v1/tokens/{made.json()['id']}/", **auth(token)).status_code == 204
    assert client.get("/api/v1/tokens/", **auth(made.json()["key"])).status_code == 401
