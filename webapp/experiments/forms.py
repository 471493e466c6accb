"""The experiment form, generated from the engine's schema and registries.

No architecture, method, default or range is written here: ``config_schema()``,
``list_models()`` and ``list_methods()`` are the only lists, so a newly registered
architecture or option shows up in the form with no change to this file.
"""
from __future__ import annotations

import json

from django import forms

from engine.config import OPTION_KEYS, config_schema
from engine.data.budget import STANDARD_BUDGETS
from engine.methods import list_methods
from engine.models import list_models
from webapp.datasets.models import Dataset
from webapp.teams.access import writable_teams_of

#: Shown at the top; every other schema field goes under "Advanced".
BASIC_FIELDS = ("arch", "method", "labeled", "iters", "batch_size", "crop_size", "lr", "seed", "device")


def _field_for(spec: dict) -> forms.Field:
    # Not required: an empty field means "the engine's default".
    common = {"label": spec["label"], "help_text": spec["help"], "initial": spec["default"], "required": False}
    name = spec["name"]
    if name == "arch":
        return forms.ChoiceField(choices=[(m["name"], f"{m['name']} ({m['family']})") for m in list_models()], **common)
    if name == "method":
        return forms.ChoiceField(choices=[(m["name"], f"{m['name']} ({m['family']})") for m in list_methods()], **common)
    if name == "data":
        return None
    if spec.get("choices"):
        return forms.ChoiceField(choices=[(c, c) for c in spec["choices"]], **common)
    if spec["type"] == "int":
        return forms.IntegerField(min_value=spec.get("min"), max_value=spec.get("max"), **common)
    if spec["type"] == "float":
        return forms.FloatField(min_value=spec.get("min"), max_value=spec.get("max"), **common)
    if spec["type"] == "bool":
        return forms.BooleanField(**common)
    return forms.CharField(**common)


class JSONObjectField(forms.CharField):
    def __init__(self, **kwargs):
        super().__init__(required=False, widget=forms.Textarea(attrs={"rows": 2, "placeholder": "{}"}), **kwargs)

    def to_python(self, value):
        value = (value or "").strip()
        if not value:
            return {}
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(f"Not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}).")
        if not isinstance(parsed, dict):
            raise forms.ValidationError('Expected a JSON object, e.g. {"base_width": 16}.')
        return parsed

    def prepare_value(self, value):
        return json.dumps(value) if isinstance(value, dict) else value


class ExperimentForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=None, empty_label=None)
    name = forms.CharField(max_length=200, required=False, help_text="Leave empty to name it after its settings.")

    def __init__(self, *args, datasets, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = datasets
        self.schema_fields: list[str] = []
        for spec in config_schema():
            field = _field_for(spec)
            if field is not None:
                self.fields[spec["name"]] = field
                self.schema_fields.append(spec["name"])
        self.fields["labeled"].widget.attrs["list"] = "label-budgets"
        self.fields["model_options"] = JSONObjectField(help_text="Architecture options as JSON, e.g. {\"base_width\": 16}.")
        self.fields["method_options"] = JSONObjectField(help_text="Method options as JSON, e.g. {\"threshold\": 0.9}.")

    label_budgets = STANDARD_BUDGETS

    def basic_fields(self):
        return [self[name] for name in BASIC_FIELDS if name in self.fields]

    def advanced_fields(self):
        return [self[name] for name in self.schema_fields if name not in BASIC_FIELDS]

    def config_values(self) -> dict:
        """What the user set: an empty field or one left at the engine's default is left out,
        so the engine applies its default (and a default never counts as the user's choice)."""
        values = {name: self.cleaned_data[name] for name in self.schema_fields
                  if self.cleaned_data[name] not in (None, "", self.fields[name].initial)}
        values["model_options"] = self.cleaned_data["model_options"]
        values["method_options"] = self.cleaned_data["method_options"]
        return values

    def add_config_errors(self, errors: dict[str, str]) -> None:
        for field, message in errors.items():
            target = field.split(".")[0]
            self.add_error(target if target in self.fields else None, f"{field}: {message}" if "." in field else message)


def initial_from(experiment) -> dict:
    """The form's values for a clone of ``experiment``: its stored config, editable before launch."""
    initial = {name: value for name, value in experiment.config.items() if name not in OPTION_KEYS}
    initial.update({key: experiment.config.get(key, {}) for key in OPTION_KEYS})
    initial.update({"dataset": experiment.dataset_id, "name": f"{experiment.name} (clone)"[:200]})
    return initial


def dataset_choices(user):
    return Dataset.objects.filter(team__in=writable_teams_of(user)).select_related("team")


def catalogue_options() -> dict:
    """Each architecture's and method's options, for the form's option tables."""
    return {
        "arch": {m["name"]: {"paper": m["paper"], "options": m["options"]} for m in list_models()},
        "method": {m["name"]: {"paper": m["paper"], "options": m["options"]} for m in list_methods()},
    }
