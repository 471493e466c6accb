"""The new-experiment form's option fields and its sweep section (Django test client).

Option fields are generated from the registries; these tests compare with the registries
too, so a newly registered option that the form misses fails here.
"""
import pytest

from engine.methods import list_methods
from engine.models import list_models
from tests.conftest import PASSWORD, TINY_RUN
from tests.webapp.test_experiment_launch import form_data
from webapp.experiments.forms import ExperimentForm, dataset_choices
from webapp.experiments.launch import launch_experiment
from webapp.experiments.models import Experiment
from webapp.sweeps.models import Sweep


def registered_options():
    """(field name, kind, entry, Option.describe()) for every option of every registered entry."""
    return [(f"{kind}__{entry['name']}__{option['name']}", kind, entry["name"], option)
            for kind, catalogue in (("arch", list_models()), ("method", list_methods()))
            for entry in catalogue for option in entry["options"]]


def sweep_data(dataset, **changes):
    """A sweep as the browser posts it: mode sweep, the shared settings, and the grid's ticks."""
    data = form_data(dataset, mode="sweep", sweep_name="screening", sweep_methods=["supervised", "fixmatch"],
                     sweep_budgets=["1/4", "1/2"], sweep_counts="", sweep_seeds="0")
    data.update(changes)
    return {name: value for name, value in data.items() if value is not None}


@pytest.fixture
def alice(client, team_users):
    client.login(username="alice", password=PASSWORD)
    return client


def test_every_registered_option_has_a_field_with_its_default_and_range(alice, dataset):
    response = alice.get("/experiments/new/")
    form, page = response.context["form"], response.content.decode()
    expected = registered_options()
    generated = {name for name in form.fields if name.startswith(("arch__", "method__"))}

    assert generated == {name for name, *_ in expected}
    for name, _kind, _entry, option in expected:
        field = form[name]
        assert field.initial == option["default"], name
        assert f'name="{name}"' in page, name
        assert field.help_text.startswith(option["help"]), name
        if "min" in option:
            assert f'min="{option["min"]}"' in str(field) and f'max="{option["max"]}"' in str(field), name
        if "choices" in option:
            assert [value for value, _ in form.fields[name].choices] == option["choices"], name
    for kind, catalogue in (("arch", list_models()), ("method", list_methods())):
        for entry in catalogue:
            assert f'data-kind="{kind}" data-entry="{entry["name"]}"' in page, entry["name"]


def test_the_json_option_textareas_are_gone_from_the_page(alice, dataset):
    page = alice.get("/experiments/new/").content.decode()
    assert 'name="model_options"' not in page and 'name="method_options"' not in page
    assert "<textarea" not in page


def test_an_option_field_reaches_the_stored_config(alice, dataset):
    response = alice.post("/experiments/new/", form_data(dataset, method="fixmatch",
                                                         method__fixmatch__confidence_threshold="0.8"))

    experiment = Experiment.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/experiments/{experiment.pk}/"
    assert experiment.config["model_options"] == {"base_width": 4, "depth": 2, "upsampling": "bilinear",
                                                  "stem_stride": 1}
    assert experiment.config["method"] == "fixmatch"
    assert experiment.config["method_options"]["confidence_threshold"] == 0.8
    assert experiment.config["method_options"]["cutmix"] is True  # ticked by default, as the browser posts it


def test_a_choice_an_int_choice_and_an_unticked_bool_reach_the_config(alice, dataset):
    data = form_data(dataset, method="fixmatch", method__fixmatch__threshold_mode="distribution",
                     arch__unet__upsampling="transposed", arch__unet__stem_stride="2")
    del data["method__fixmatch__cutmix"]  # an unticked checkbox is not posted

    assert alice.post("/experiments/new/", data).status_code == 302

    config = Experiment.objects.get().config
    assert config["method_options"]["threshold_mode"] == "distribution" and config["method_options"]["cutmix"] is False
    assert config["model_options"]["upsampling"] == "transposed" and config["model_options"]["stem_stride"] == 2


def test_an_out_of_range_option_is_refused_beside_its_field_and_nothing_is_stored(alice, dataset):
    response = alice.post("/experiments/new/", form_data(dataset, arch__unet__base_width=1,
                                                         method="fixmatch", method__fixmatch__confidence_threshold=2))

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "greater than or equal to 4" in errors["arch__unet__base_width"][0]
    assert "less than or equal to 1" in errors["method__fixmatch__confidence_threshold"][0]
    page = response.content.decode()
    unet = page.split('data-entry="unet"', 1)[1].split("</fieldset>", 1)[0]
    assert 'class="field has-error"' in unet and "greater than or equal to 4" in unet
    assert not Experiment.objects.exists()


def test_the_fields_of_an_entry_not_chosen_are_ignored(alice, dataset):
    """Without JavaScript every entry's fields are on the page; only the chosen ones count."""
    response = alice.post("/experiments/new/", form_data(dataset, arch__segformer_b0__drop_path_rate="99",
                                                         method__cps__cps_weight="oops"))

    assert response.status_code == 302
    assert Experiment.objects.get().config["method"] == "supervised"


def test_engine_errors_on_an_option_land_on_that_options_field(dataset, team_users):
    form = ExperimentForm(form_data(dataset, method="fixmatch"), datasets=dataset_choices(team_users["alice"]))
    assert form.is_valid(), form.errors

    form.add_config_errors({"method_options.confidence_threshold": "must be at most 1, got 2",
                            "model_options.depth": "too deep", "batch_size": "too large"})

    assert form.errors["method__fixmatch__confidence_threshold"] == ["must be at most 1, got 2"]
    assert form.errors["arch__unet__depth"] == ["too deep"]
    assert form.errors["batch_size"] == ["too large"]


def test_a_sweep_cells_option_error_lands_on_that_methods_field(dataset, team_users):
    form = ExperimentForm(sweep_data(dataset), datasets=dataset_choices(team_users["alice"]))
    assert form.is_valid(), form.errors

    form.add_config_errors({"run 2 (fixmatch, labels 1/4, seed 0): method_options.confidence_threshold": "wrong",
                            "grid": "too many runs"})

    assert form.errors["method__fixmatch__confidence_threshold"] == ["Run 2 (fixmatch, labels 1/4, seed 0): wrong"]
    assert form.non_field_errors() == ["too many runs"]


def test_clone_prefills_the_option_fields(alice, dataset, team_users):
    source = launch_experiment(dataset, {**TINY_RUN, "method": "fixmatch",
                                         "method_options": {"confidence_threshold": 0.8, "cutmix": False}},
                               team_users["alice"])

    form = alice.get(f"/experiments/new/?clone={source.pk}").context["form"]

    assert form["arch"].value() == "unet" and form["method"].value() == "fixmatch"
    assert form["arch__unet__base_width"].value() == 4 and form["arch__unet__depth"].value() == 2
    assert form["method__fixmatch__confidence_threshold"].value() == 0.8
    assert form["method__fixmatch__cutmix"].value() is False
    assert form["method__cps__cutmix"].value() is True  # another method's fields keep their defaults


def test_a_sweep_of_two_methods_by_two_budgets_queues_four_runs_in_one_sweep(alice, dataset):
    response = alice.post("/experiments/new/", sweep_data(dataset, method__fixmatch__confidence_threshold="0.8"))

    sweep = Sweep.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/sweeps/{sweep.pk}/"
    runs = list(sweep.experiments.order_by("pk"))
    assert len(runs) == 4 and all(run.status == "queued" for run in runs)
    assert sweep.name == "screening" and sweep.grid["methods"] == ["supervised", "fixmatch:confidence_threshold=0.8"]
    assert [(run.config["method"], run.config["labeled"]) for run in runs] == [
        ("supervised", "1/4"), ("fixmatch", "1/4"), ("supervised", "1/2"), ("fixmatch", "1/2")]
    assert all(run.config["model_options"]["base_width"] == 4 and run.config["iters"] == 6 for run in runs)
    assert [run.config["method_options"].get("confidence_threshold") for run in runs] == [None, 0.8, None, 0.8]
    followed = alice.get(response["Location"])
    assert "Sweep “screening” launched: 4 runs queued." in followed.content.decode()


def test_a_sweep_takes_typed_budgets_several_seeds_and_one_architecture_with_its_options(alice, dataset):
    response = alice.post("/experiments/new/", sweep_data(
        dataset, sweep_methods=["supervised"], sweep_budgets=[], sweep_counts="4, 8", sweep_seeds="1 2",
        sweep_archs=["unet"], arch="ddrnet23_slim"))

    assert response.status_code == 302
    sweep = Sweep.objects.get()
    assert sweep.grid["budgets"] == ["4", "8"] and sweep.grid["seeds"] == [1, 2] and sweep.grid["archs"] == ["unet"]
    assert sweep.grid["config"]["model_options"] == {"base_width": 4, "depth": 2}
    assert sweep.experiments.count() == 4


@pytest.mark.parametrize("changes, field, message", [
    ({"sweep_methods": []}, "sweep_methods", "Tick at least one method."),
    ({"sweep_budgets": [], "sweep_counts": ""}, "sweep_budgets", "Tick at least one label budget"),
    ({"sweep_counts": "100"}, "sweep_budgets",
     "Run 5 (supervised, labels 100, seed 0): the label budget asks for 100 labelled images"),
    ({"sweep_counts": "0.5"}, "sweep_budgets", "'0.5' (the same as '1/2') is given twice"),
    ({"sweep_counts": "lots"}, "sweep_counts", "lots: expected a fraction like 1/8"),
    ({"sweep_seeds": "0, x"}, "sweep_seeds", "x: expected a number"),
    ({"sweep_seeds": ""}, "sweep_seeds", "Give at least one seed"),
    ({"sweep_name": " "}, "sweep_name", "Name the sweep"),
    ({"batch_size": 64}, "batch_size", "batch_size 64 is larger than"),
    ({"sweep_archs": ["unet", "segformer_b0"]}, "arch__unet__base_width", "With several architectures"),
    ({"sweep_seeds": " ".join(map(str, range(126)))}, "__all__",
     "504 runs (2 methods x 2 budgets x 126 seeds) is more than the 500 one sweep may hold"),
])
def test_a_bad_sweep_is_refused_beside_its_field_and_nothing_is_stored(alice, dataset, changes, field, message):
    response = alice.post("/experiments/new/", sweep_data(dataset, **changes))

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors and message in errors[field][0], errors
    assert message.split(":")[0] in response.content.decode().replace("&#x27;", "'")
    assert not Sweep.objects.exists() and not Experiment.objects.exists()


def test_a_sweep_name_already_taken_is_refused_beside_the_name(alice, dataset):
    assert alice.post("/experiments/new/", sweep_data(dataset)).status_code == 302

    response = alice.post("/experiments/new/", sweep_data(dataset))

    assert response.status_code == 400
    assert "already has a sweep called 'screening'" in response.context["form"].errors["sweep_name"][0]
    assert Sweep.objects.count() == 1 and Experiment.objects.count() == 4


def test_the_sweep_fields_are_ignored_when_launching_one_run(alice, dataset):
    response = alice.post("/experiments/new/", form_data(dataset, sweep_seeds="not numbers", sweep_methods=["cps"]))

    assert response.status_code == 302
    assert not Sweep.objects.exists() and Experiment.objects.get().sweep is None


@pytest.mark.parametrize("user", ["bob", "charlie"])
@pytest.mark.parametrize("data", [form_data, sweep_data], ids=["run", "sweep"])
def test_a_read_only_member_or_an_outsider_cannot_launch(client, dataset, user, data):
    client.login(username=user, password=PASSWORD)
    assert list(client.get("/experiments/new/").context["form"].fields["dataset"].queryset) == []

    response = client.post("/experiments/new/", data(dataset))

    assert response.status_code == 400
    assert "Select a valid choice" in response.context["form"].errors["dataset"][0]
    assert not Sweep.objects.exists() and not Experiment.objects.exists()
