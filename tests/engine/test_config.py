"""RunConfig: built from flat JSON, validated once, with errors that name the field."""
from __future__ import annotations

import pytest

from engine.config import FIELDS, ConfigError, RunConfig, config_schema
from engine.models import MODELS

MINIMAL = {"data": "datasets/demo"}


def test_flat_round_trip_is_identical():
    config = RunConfig.from_flat({**MINIMAL, "arch": "unet", "model_options": {"base_width": 8}, "labeled": 16,
                                  "eval_mode": "sliding", "eval_crop": 256})

    assert RunConfig.from_flat(config.to_flat()) == config
    assert config.to_flat()["labeled"] == "16"  # a count sent as a JSON number
    assert config.model.options["depth"] == 4  # defaults of the architecture filled in
    assert config.schedule.eval_mode == "sliding" and config.schedule.eval_crop == 256


def test_unknown_architecture_lists_the_valid_ones():
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_flat({**MINIMAL, "arch": "unett"})

    assert "unett" in caught.value.errors["arch"]
    for name in MODELS.names():
        assert name in caught.value.errors["arch"]


def test_every_wrong_field_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_flat({"iters": 0, "optimizer": "adam", "eval_mode": "tiles", "colour": 1,
                             "model_options": {"widht": 3}})

    errors = caught.value.errors
    assert set(errors) == {"data", "iters", "optimizer", "eval_mode", "colour", "model_options.widht"}
    assert "adamw, sgd" in errors["optimizer"]
    assert "base_width" in errors["model_options.widht"]


@pytest.mark.parametrize("device, valid", [("auto", True), ("cuda:1", True), ("gpu", False), ("cuda:x", False)])
def test_device_names(device, valid):
    if valid:
        assert RunConfig.from_flat({**MINIMAL, "device": device}).device.device == device
    else:
        with pytest.raises(ConfigError, match="auto, cpu, cuda or cuda:N"):
            RunConfig.from_flat({**MINIMAL, "device": device})


def test_schema_describes_every_field_with_section_default_and_help():
    schema = config_schema()

    assert [field["name"] for field in schema] == [f.option.name for f in FIELDS]
    assert all(field["help"] and "section" in field and "default" in field for field in schema)
    eval_mode = next(field for field in schema if field["name"] == "eval_mode")
    assert eval_mode["choices"] == ["whole", "sliding"]


def test_strong_blur_defaults_to_the_crop_scaled_blur_and_refuses_other_modes():
    from engine.config import ConfigError, RunConfig

    assert RunConfig.from_flat({"data": "x"}).data.strong_blur == "crop"
    assert RunConfig.from_flat({"data": "x", "strong_blur": "pixels"}).data.strong_blur == "pixels"
    with pytest.raises(ConfigError) as error:
        RunConfig.from_flat({"data": "x", "strong_blur": "blurry"})
    assert "strong_blur" in error.value.errors


def test_scale_range_is_validated_across_fields():
    from engine.config import ConfigError, RunConfig

    config = RunConfig.from_flat({"data": "x", "min_scale": 1.0, "max_scale": 1.0})
    assert (config.data.min_scale, config.data.max_scale) == (1.0, 1.0)
    with pytest.raises(ConfigError) as error:
        RunConfig.from_flat({"data": "x", "min_scale": 1.5, "max_scale": 1.0})
    assert error.value.errors == {"min_scale": "must not exceed max_scale (1.0); got 1.5"}


@pytest.mark.parametrize("field, value", [
    ("iters", "inf"), ("iters", 1e999), ("iters", "1e999"), ("lr", "NaN"), ("lr", float("nan")), ("lr", "-Infinity"),
    ("seed", 10**30), ("seed", 1e30), ("seed", -1), ("seed", 2**32), ("warmup_iters", 10**30), ("eval_every", 10**30),
    ("log_every", 10**30), ("grad_clip", 1e300), ("iters", [1]), ("iters", {"a": 1}), ("iters", None),
])
def test_numbers_that_are_not_finite_or_out_of_range_are_refused_naming_the_field(field, value):
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_flat({**MINIMAL, field: value})

    assert set(caught.value.errors) == {field}
    assert len(caught.value.errors[field]) < 200  # a huge number is not echoed whole


def test_a_huge_whole_number_is_never_rounded_into_range():
    assert RunConfig.from_flat({**MINIMAL, "seed": 2**32 - 1}).budget.seed == 2**32 - 1
    assert RunConfig.from_flat({**MINIMAL, "seed": "12"}).budget.seed == 12
    assert RunConfig.from_flat({**MINIMAL, "iters": 30.0}).schedule.iters == 30


def test_a_warm_up_must_fit_the_run():
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_flat({**MINIMAL, "iters": 100, "warmup_iters": 500})
    assert caught.value.errors == {"warmup_iters": "must not exceed iters (100), the length of the run; got 500"}
    # Intervals longer than a short run mean "at the end only".
    assert RunConfig.from_flat({**MINIMAL, "iters": 1, "eval_every": 2}).schedule.eval_every == 2


@pytest.mark.parametrize("device", ["cuda:999999999999", "cuda:256", "cuda:\u0663", "cuda:" + "9" * 5000])
def test_device_indices_beyond_any_host_are_refused(device):
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_flat({**MINIMAL, "device": device})
    assert "N at most 255" in caught.value.errors["device"]
    assert len(caught.value.errors["device"]) < 200


def test_an_oversized_unknown_key_is_not_echoed_whole():
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_flat({**MINIMAL, "x" * 100_000: 1})
    (name,) = caught.value.errors
    assert len(name) < 100 and name.startswith("xxx")


def test_every_numeric_setting_has_a_range_or_choices():
    from engine.methods import list_methods
    from engine.models import list_models
    from engine.options import Option

    specs = config_schema() + [o for entry in list_models() + list_methods() for o in entry["options"]]
    for spec in specs:
        if spec["type"] in ("int", "float"):
            assert "choices" in spec or ("min" in spec and "max" in spec), spec["name"]
    with pytest.raises(TypeError, match="needs min and max"):
        Option("steps", "int", 1, "Unbounded.", min=0)


def test_a_short_run_validates_again_from_its_stored_config():
    stored = RunConfig.from_flat({**MINIMAL, "iters": 4}).to_flat()  # holds log_every 10, the default
    assert RunConfig.from_flat(stored).schedule.log_every == 10
