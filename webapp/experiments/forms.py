"""The experiment form, generated from the engine's schema and registries.

No architecture, method, option, default or range is written here: ``config_schema()``,
``list_models()`` and ``list_methods()`` are the only lists (``option_fields``), so a newly
registered architecture or option shows up in the form with no change to this file.

The same form launches one run or a sweep (``engine.sweeps``: methods x label budgets x
seeds, optionally x architectures). Only the fields that the chosen mode and entries use
are validated; the page's script hides the others, and without it the server ignores them.
"""
from __future__ import annotations

import re
from typing import Any

from django import forms

from engine.config import FIELD_BY_NAME, ConfigError, config_schema
from engine.data.budget import STANDARD_BUDGETS, parse_labeled
from engine.sweeps import Grid, cells, parse_method
from webapp.datasets.models import Dataset
from webapp.experiments.option_fields import (
    KIND_BY_CONFIG_KEY,
    KIND_BY_SETTING,
    KINDS,
    OptionGroup,
    changed_options,
    field_for,
    initial_options,
    option_field_name,
    option_groups,
)
from webapp.sweeps.services import MAX_NAME_LENGTH
from webapp.teams.access import writable_teams_of

#: Shown at the top; every other schema field goes under "Advanced".
BASIC_FIELDS = ("arch", "method", "labeled", "iters", "batch_size", "crop_size", "lr", "seed", "device")
RUN, SWEEP = "run", "sweep"
#: The single-run fields a sweep's grid sets instead ("arch" too, when the sweep ticks architectures).
SET_BY_THE_GRID = ("name", "method", "labeled", "seed")
SWEEP_FIELDS = ("sweep_name", "sweep_methods", "sweep_budgets", "sweep_counts", "sweep_seeds", "sweep_archs")
#: Where the engine's sweep errors (``launch_sweep``: an axis, or a field of one run) are shown.
SWEEP_ERROR_FIELDS = {"name": "sweep_name", "methods": "sweep_methods", "method": "sweep_methods",
                      "budgets": "sweep_budgets", "labeled": "sweep_budgets", "seeds": "sweep_seeds",
                      "seed": "sweep_seeds", "archs": "sweep_archs"}
#: Engine error keys whose message says what is wrong without naming the key.
SELF_EXPLAINED = ("grid",)
#: How ``engine.sweeps.cell_errors`` names a field of one run.
CELL_ERROR = re.compile(r"run (\d+) \((.*)\): (.+)", re.DOTALL)
LIST_SEPARATORS = re.compile(r"[,\s]+")
#: Longest typed list of seeds or budgets (a grid holds at most engine.sweeps.MAX_RUNS runs anyway).
MAX_LIST_LENGTH = 2000


def _schema_field(spec: dict) -> forms.Field | None:
    if spec["name"] == "data":
        return None  # the chosen dataset sets it
    if spec["name"] in KIND_BY_SETTING:
        catalogue = KIND_BY_SETTING[spec["name"]].catalogue()
        return forms.ChoiceField(choices=[(m["name"], f"{m['name']} ({m['family']})") for m in catalogue],
                                 label=spec["label"], help_text=spec["help"], initial=spec["default"], required=False)
    return field_for(spec)


def _items(text: str) -> list[str]:
    return [item for item in LIST_SEPARATORS.split(text or "") if item]


def _spec_value(value: Any) -> str:
    """A value as ``NAME:OPTION=VALUE`` carries it (``Option.clean`` reads the text back)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


class ExperimentForm(forms.Form):
    mode = forms.ChoiceField(choices=[(RUN, "One run"), (SWEEP, "A sweep: a grid of runs")], initial=RUN,
                             required=False, widget=forms.RadioSelect, label="Launch")
    dataset = forms.ModelChoiceField(queryset=None, empty_label=None)
    name = forms.CharField(max_length=200, required=False, help_text="Leave empty to name it after its settings.")
    sweep_name = forms.CharField(max_length=MAX_NAME_LENGTH, required=False, label="Sweep name",
                                 help_text="Unique among your team's sweeps; each run is named after it and its cell.")
    sweep_methods = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple, label="Methods",
                                              help_text="Each ticked method runs with its options below.")
    sweep_budgets = forms.MultipleChoiceField(choices=[(b, b) for b in STANDARD_BUDGETS], required=False,
                                              widget=forms.CheckboxSelectMultiple, label="Label budgets")
    sweep_counts = forms.CharField(required=False, max_length=MAX_LIST_LENGTH, label="Other label budgets",
                                   help_text="Counts of labelled images (or fractions), separated by commas: 16, 32.")
    sweep_seeds = forms.CharField(required=False, max_length=MAX_LIST_LENGTH, initial="0", label="Seeds",
                                  help_text="Whole numbers separated by commas: 0, 1, 2. Each seed also draws the "
                                            "labelled images.")
    sweep_archs = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                            label="Architectures (optional)",
                                            help_text="None ticked: every run uses the architecture chosen above.")

    label_budgets = STANDARD_BUDGETS

    def __init__(self, *args, datasets, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = datasets
        self.schema_fields: list[str] = []
        for spec in config_schema():
            field = _schema_field(spec)
            if field is not None:
                self.fields[spec["name"]] = field
                self.schema_fields.append(spec["name"])
        self.fields["labeled"].widget.attrs["list"] = "label-budgets"
        self.fields["sweep_methods"].choices = self.fields["method"].choices
        self.fields["sweep_archs"].choices = self.fields["arch"].choices
        self.option_groups = option_groups()
        for group in self.option_groups:
            for option, name in zip(group.options, group.field_names(), strict=True):
                self.fields[name] = field_for(option)

    # -- what the page shows -------------------------------------------------------------

    def basic_fields(self):
        return [self[name] for name in BASIC_FIELDS if name in self.fields]

    def advanced_fields(self):
        return [self[name] for name in self.schema_fields if name not in BASIC_FIELDS]

    def groups_of(self, setting: str) -> list[dict]:
        return [{"group": group, "fields": [self[name] for name in group.field_names()]}
                for group in self.option_groups if group.kind.setting == setting]

    def arch_groups(self):
        return self.groups_of("arch")

    def method_groups(self):
        return self.groups_of("method")

    # -- what the server reads -----------------------------------------------------------

    @property
    def is_sweep(self) -> bool:
        return self.cleaned_data.get("mode") == SWEEP

    def _chosen(self, setting: str) -> str:
        return self.cleaned_data.get(setting) or FIELD_BY_NAME[setting].option.default

    def entries_in_use(self, setting: str) -> list[str]:
        """The architectures / methods whose option fields this launch reads."""
        if self.is_sweep and setting == "method":
            return list(self.cleaned_data.get("sweep_methods") or [])
        if self.is_sweep and self.cleaned_data.get("sweep_archs") and setting == "arch":
            return list(self.cleaned_data["sweep_archs"])
        return [self._chosen(setting)]

    def _group(self, setting: str, entry: str) -> OptionGroup:
        return next(g for g in self.option_groups if g.kind.setting == setting and g.entry == entry)

    def _unused_fields(self) -> list[str]:
        in_use = {(setting, entry) for setting in KIND_BY_SETTING for entry in self.entries_in_use(setting)}
        unused = [name for group in self.option_groups if (group.kind.setting, group.entry) not in in_use
                  for name in group.field_names()]
        if self.is_sweep:
            unused += SET_BY_THE_GRID + (("arch",) if self.cleaned_data.get("sweep_archs") else ())
        else:
            unused += SWEEP_FIELDS
        return unused

    def clean_sweep_counts(self) -> list[str]:
        budgets = _items(self.cleaned_data["sweep_counts"])
        for budget in budgets:
            try:
                parse_labeled(budget)
            except ValueError as error:
                raise forms.ValidationError(f"{budget[:40]}: {error}") from None
        return budgets

    def clean_sweep_seeds(self) -> list[int]:
        seeds = []
        for item in _items(self.cleaned_data["sweep_seeds"]):
            try:
                seeds.append(FIELD_BY_NAME["seed"].option.clean(item))
            except ValueError as error:
                raise forms.ValidationError(f"{item[:40]}: {error}") from None
        return seeds

    def clean(self):
        """Forget the fields this launch does not read (their errors too); check a sweep's axes are filled."""
        cleaned = super().clean()
        for name in self._unused_fields():
            self._errors.pop(name, None)  # added by the field's own clean, before this one
            cleaned.pop(name, None)
        if self.is_sweep:
            self._clean_sweep(cleaned)
        return cleaned

    def _clean_sweep(self, cleaned: dict) -> None:
        if not cleaned.get("sweep_name", "").strip():
            self.add_error("sweep_name", "Name the sweep: its runs are named after it.")
        if not cleaned.get("sweep_methods"):
            self.add_error("sweep_methods", "Tick at least one method.")
        if not cleaned.get("sweep_budgets") and cleaned.get("sweep_counts") == []:
            self.add_error("sweep_budgets", "Tick at least one label budget or type a count below.")
        if cleaned.get("sweep_seeds") == []:
            self.add_error("sweep_seeds", "Give at least one seed, e.g. 0.")
        archs = cleaned.get("sweep_archs") or []
        for arch in archs if len(archs) > 1 else ():
            changed = changed_options(self._group("arch", arch), cleaned)
            if changed:
                name = option_field_name("arch", arch, next(iter(changed)))
                self.add_error(name, "With several architectures in one sweep each trains with its default "
                                     "options: tick one architecture to change its options.")
        for method in cleaned.get("sweep_methods") or []:
            for option, value in changed_options(self._group("method", method), cleaned).items():
                if "," in str(value):
                    self.add_error(option_field_name("method", method, option),
                                   "A sweep cannot carry a comma in a method option; launch this method alone.")

    def entry_options(self, setting: str, entry: str) -> dict[str, Any]:
        return changed_options(self._group(setting, entry), self.cleaned_data)

    def config_values(self) -> dict:
        """What the user set: an empty field or one left at the engine's default is left out,
        so the engine applies its default (and a default never counts as the user's choice).
        The chosen architecture's and method's changed option fields become their options."""
        values = {name: self.cleaned_data[name] for name in self.schema_fields
                  if self.cleaned_data.get(name) not in (None, "", self.fields[name].initial)}
        for kind in KINDS:
            values[kind.config_key] = self.entry_options(kind.setting, self._chosen(kind.setting))
        return values

    def method_spec(self, method: str) -> str:
        """``fixmatch`` or ``fixmatch:confidence_threshold=0.9``: the method with its changed options."""
        options = self.entry_options("method", method)
        return ":".join([method, ",".join(f"{k}={_spec_value(v)}" for k, v in options.items())]) if options else method

    def sweep_values(self) -> dict:
        """``launch_sweep``'s grid: ticked methods (each with its option fields), budgets, seeds,
        architectures, and the base settings every run shares."""
        archs = list(self.cleaned_data.get("sweep_archs") or [])
        base = {name: value for name, value in self.config_values().items()
                if name not in ("method", "labeled", "seed", "method_options") and value != {}}
        if archs:
            base.pop("arch", None)
            base.pop("model_options", None)
            if len(archs) == 1 and self.entry_options("arch", archs[0]):
                base["model_options"] = self.entry_options("arch", archs[0])
        return {"methods": [self.method_spec(method) for method in self.cleaned_data["sweep_methods"]],
                "budgets": [*self.cleaned_data["sweep_budgets"], *self.cleaned_data["sweep_counts"]],
                "seeds": self.cleaned_data["sweep_seeds"], "archs": archs, "config": base}

    # -- the engine's refusals, beside their fields ----------------------------------------

    def add_config_errors(self, errors: dict[str, str]) -> None:
        """Each ConfigError field on the form field it names: ``method_options.threshold`` on the
        chosen method's threshold field, a sweep's ``run 3 (...): labeled`` on its budgets."""
        for key, message in errors.items():
            cell = CELL_ERROR.fullmatch(key)
            if cell:
                position, shown, key = cell.groups()
                message = f"Run {position} ({shown}): {message}"
            target = self._field_for_error(key, self._cell(int(cell.group(1))) if cell else None)
            self.add_error(target, message if target or key in SELF_EXPLAINED else f"{key}: {message}")

    def _field_for_error(self, key: str, cell) -> str | None:
        config_key, dot, option = key.partition(".")
        if dot and config_key in KIND_BY_CONFIG_KEY:
            setting = KIND_BY_CONFIG_KEY[config_key].setting
            entry = self._chosen(setting)
            if cell is not None:
                entry = parse_method(cell.method)[0] if setting == "method" else (cell.arch or entry)
            name = option_field_name(setting, entry, option)
            return name if name in self.fields else None
        if self.is_sweep and key == "arch" and self.cleaned_data.get("sweep_archs"):
            return "sweep_archs"
        if self.is_sweep and key in SWEEP_ERROR_FIELDS:
            return SWEEP_ERROR_FIELDS[key]
        return key if key in self.fields and key not in self._unused_fields() else None

    def _cell(self, position: int):
        values = self.sweep_values()
        grid = Grid(methods=values["methods"], budgets=values["budgets"], seeds=values["seeds"],
                    archs=values["archs"] or (None,), base=values["config"])
        try:
            return cells(grid)[position - 1]
        except (ConfigError, IndexError):
            return None


def initial_from(experiment) -> dict:
    """The form's values for a clone of ``experiment``: its stored config, editable before launch."""
    config = experiment.config
    initial = {name: value for name, value in config.items() if name not in KIND_BY_CONFIG_KEY}
    initial.update(initial_options(config))
    initial.update({"dataset": experiment.dataset_id, "name": f"{experiment.name} (clone)"[:200]})
    return initial


def dataset_choices(user):
    return Dataset.objects.filter(team__in=writable_teams_of(user)).select_related("team")
