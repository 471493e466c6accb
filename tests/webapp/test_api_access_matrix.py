"""Who may call what, for every operation the API's own schema lists (a new endpoint is covered
without a new test): anonymous callers get 401, another team's objects are a 404, a read-only
member's writes are a 403, and members read what their team has."""
import pytest

from tests.conftest import TINY_RUN
from webapp.accounts.models import ApiToken
from webapp.experiments import lifecycle
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import Evaluation
from webapp.transfer.models import TransferEvaluation

WRITES = ("post", "patch", "put", "delete")
#: Operations on the caller's own account, not on a team's objects.
OWN = ("/api/v1/tokens/",)
#: Collection writes check the team inside the body; tested with bodies in their own files.
BODY_CHECKED = ("/api/v1/datasets/", "/api/v1/experiments/", "/api/v1/sweeps/")
#: The step of the world's one evaluation, for paths under ``evaluations/{step}/``.
EVALUATED_STEP = 3
#: Writes a read-only reviewer may make: commenting and starring (webapp.review.services).
REVIEWER_WRITES = ("/api/v1/experiments/{id}/comments/", "/api/v1/sweeps/{id}/comments/",
                   "/api/v1/experiments/{id}/star/", "/api/v1/sweeps/{id}/star/")


@pytest.fixture
def world(client, dataset, team_users):
    from webapp.review.services import add_comment
    from webapp.sweeps.services import launch_sweep

    experiment = launch_experiment(dataset, dict(TINY_RUN), team_users["alice"])
    lifecycle.claim_next(experiment.queue, "w")
    lifecycle.fail(experiment.pk, "boom", attempt=1)
    Evaluation.objects.create(experiment=experiment, step=EVALUATED_STEP, miou=0.5, iou=[0.5], pixel_accuracy=0.5,
                              mean_accuracy=0.5, confusion_matrix=[[1]], class_names=["a"])
    sweep = launch_sweep(dataset, {"methods": ["supervised"], "budgets": ["1/2"], "seeds": [0],
                          "config": {k: v for k, v in TINY_RUN.items() if k != "labeled"}},
                         team_users["alice"], "grid")
    token, _ = ApiToken.issue(team_users["alice"], "alice's")
    comment = add_comment(experiment, team_users["alice"], "a note")
    evaluation = TransferEvaluation.objects.create(experiment=experiment, dataset=dataset, queue=experiment.queue,
                                                   requested_by=team_users["alice"])
    ids = {"datasets": dataset.pk, "experiments": experiment.pk, "sweeps": sweep.pk, "tokens": token.pk,
           "comments": comment.pk, "transfer-evaluations": evaluation.pk}
    keys = {name: ApiToken.issue(team_users[name], "t")[1] for name in ("alice", "bob", "charlie")}
    return {"ids": ids, "keys": keys}


def operations(client, key):
    schema = client.get("/api/schema/?format=json", HTTP_AUTHORIZATION=f"Token {key}").json()
    for path, methods in schema["paths"].items():
        for method in methods:
            if method in ("get", "post", "patch", "put", "delete"):
                yield path, method


def call(client, world, path, method, who):
    resource = path.split("/")[3]
    url = path.replace("{id}", str(world["ids"].get(resource, 0))).replace("{step}", str(EVALUATED_STEP))
    headers = {"HTTP_AUTHORIZATION": f"Token {world['keys'][who]}"} if who else {}
    return getattr(client, method)(url, {}, content_type="application/json", **headers)


def test_every_operation_refuses_anonymous_callers(client, world):
    checked = 0
    for path, method in operations(client, world["keys"]["alice"]):
        response = call(client, world, path, method, None)
        assert response.status_code == 401, (method, path, response.status_code)
        assert "error" in response.json()
        checked += 1
    assert checked >= 20


def test_another_teams_objects_are_not_found(client, world):
    for path, method in operations(client, world["keys"]["alice"]):
        if "{id}" not in path:
            continue
        response = call(client, world, path, method, "charlie")
        assert response.status_code == 404, (method, path, response.status_code)


def test_a_read_only_member_reads_but_cannot_write(client, world):
    for path, method in operations(client, world["keys"]["alice"]):
        if path.startswith(OWN):
            continue
        response = call(client, world, path, method, "bob")
        if method in WRITES and path in REVIEWER_WRITES:  # allowed: 200, or 201, or 400 for the empty body
            assert response.status_code in (200, 201, 400), (method, path, response.status_code)
        elif method in WRITES and path not in BODY_CHECKED:
            assert response.status_code == 403, (method, path, response.status_code)
        elif method == "get":
            assert response.status_code in (200, 404), (method, path, response.status_code)
            if path.endswith("/checkpoint/"):
                assert response.status_code == 404 and "no best.pt yet" in response.json()["error"]
            else:
                assert response.status_code == 200, (method, path)
