"""Launching runs from the form and the API: the engine's schema decides what is valid."""
from tests.conftest import PASSWORD, TINY_RUN
from webapp.experiments.models import Experiment


def form_data(dataset, **changes):
    """What the browser posts: the schema's and every option's defaults (the form's initial values,
    a checkbox only when ticked) plus the user's choices."""
    from engine.config import config_schema
    from webapp.experiments.option_fields import option_groups

    data = {spec["name"]: spec["default"] for spec in config_schema() if spec["name"] != "data"}
    for group in option_groups():
        data.update(zip(group.field_names(), (option["default"] for option in group.options), strict=True))
    data = {name: value for name, value in data.items() if not isinstance(value, bool) or value}
    data.update({"mode": "run", "dataset": dataset.pk, "name": "", "labeled": "1/2", "iters": 6, "batch_size": 4,
                 "crop_size": 32, "device": "cpu", "eval_every": 3, "log_every": 2,
                 "arch__unet__base_width": 4, "arch__unet__depth": 2})
    data.update(changes)
    return {name: value for name, value in data.items() if value is not None}


def test_form_lists_registered_architectures_and_methods(client, dataset):
    from engine.methods import list_methods
    from engine.models import list_models

    client.login(username="alice", password=PASSWORD)
    page = client.get("/experiments/new/").content.decode()
    for entry in list_models() + list_methods():
        assert f'value="{entry["name"]}"' in page


def test_form_launches_a_queued_experiment(client, dataset):
    client.login(username="alice", password=PASSWORD)
    response = client.post("/experiments/new/", form_data(dataset))
    experiment = Experiment.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/experiments/{experiment.pk}/"
    assert experiment.status == "queued" and experiment.total_steps == 6
    assert experiment.config["model_options"]["base_width"] == 4
    assert "data" not in experiment.config
    assert experiment.queue == "cpu"
    assert experiment.events.get().kind == "queued"


def test_form_shows_engine_errors_and_stores_nothing(client, dataset):
    client.login(username="alice", password=PASSWORD)
    response = client.post("/experiments/new/", form_data(dataset, labeled="3/2"))
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "fraction of labelled images must be in (0, 1]" in errors["labeled"][0]
    assert not Experiment.objects.exists()


def test_api_launch_and_error_shape(client, dataset):
    client.login(username="alice", password=PASSWORD)
    response = client.post("/api/v1/experiments/", {"dataset": dataset.pk, "config": TINY_RUN},
                           content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "queued"
    bad = {**TINY_RUN, "arch": "resnet9000", "iters": 0}
    response = client.post("/api/v1/experiments/", {"dataset": dataset.pk, "config": bad},
                           content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert "Unknown architecture `resnet9000`; choose one of:" in body["fields"]["arch"]
    assert body["fields"]["iters"] == "must be at least 1, got 0"
    assert Experiment.objects.count() == 1


def test_api_refuses_data_path_in_config(client, dataset):
    client.login(username="alice", password=PASSWORD)
    config = {**TINY_RUN, "data": "/etc"}
    response = client.post("/api/v1/experiments/", {"dataset": dataset.pk, "config": config},
                           content_type="application/json")
    assert response.status_code == 400
    assert "data" in response.json()["fields"]


def test_catalogue_comes_from_the_registries(client, dataset):
    from engine.config import config_schema
    from engine.models import MODELS

    client.login(username="alice", password=PASSWORD)
    body = client.get("/api/v1/catalogue/").json()
    assert [a["name"] for a in body["architectures"]] == MODELS.names()
    assert [f["name"] for f in body["config"]] == [f["name"] for f in config_schema()]


def test_cancel_a_queued_experiment(client, dataset):
    client.login(username="alice", password=PASSWORD)
    client.post("/api/v1/experiments/", {"dataset": dataset.pk, "config": TINY_RUN}, content_type="application/json")
    experiment = Experiment.objects.get()
    response = client.post(f"/api/v1/experiments/{experiment.pk}/cancel/")
    assert response.json()["status"] == "cancelled"


def test_the_form_offers_all_not_a_bare_1_and_refuses_1_with_the_way_out(client, dataset):
    client.login(username="alice", password=PASSWORD)
    page = client.get("/experiments/new/").content.decode()
    budgets = page.split('<datalist id="label-budgets">', 1)[1].split("</datalist>", 1)[0]
    assert '<option value="all">' in budgets and '<option value="1">' not in budgets

    response = client.post("/experiments/new/", form_data(dataset, labeled="1"))

    assert response.status_code == 400
    assert "write all (or 1/1)" in response.context["form"].errors["labeled"][0]
    assert not Experiment.objects.exists()


def test_the_api_refuses_values_out_of_range_naming_the_field(client, dataset):
    client.login(username="alice", password=PASSWORD)
    for field, value in [("seed", 10**30), ("warmup_iters", 10**30), ("eval_every", 10**30), ("log_every", 10**30),
                         ("device", "cuda:999999999999"), ("labeled", 10**6), ("iters", "inf"), ("lr", "NaN")]:
        response = client.post("/api/v1/experiments/", {"dataset": dataset.pk, "config": {**TINY_RUN, field: value}},
                               content_type="application/json")
        assert response.status_code == 400, (field, response.content)
        assert field in response.json()["fields"], field
    assert not Experiment.objects.exists()


def test_a_budget_or_batch_the_dataset_cannot_fill_is_refused_at_launch(client, dataset):
    client.login(username="alice", password=PASSWORD)
    cases = [({"labeled": "500"}, "labeled", "asks for 500 labelled images"),
             ({"batch_size": 64}, "batch_size", "batch_size 64 is larger than"),
             ({"crop_size": 512}, "crop_size", "crop_size 512 is more than"),
             ({"method": "fixmatch", "unlabeled_batch_size": 64}, "unlabeled_batch_size", "unlabeled_batch_size 64")]
    for change, field, message in cases:
        response = client.post("/api/v1/experiments/", {"dataset": dataset.pk, "config": {**TINY_RUN, **change}},
                               content_type="application/json")
        assert response.status_code == 400, change
        assert message in response.json()["fields"][field], (change, response.json())
    assert not Experiment.objects.exists()
