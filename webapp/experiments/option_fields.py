"""Form fields generated from the engine's option descriptions (``Option.describe()``).

One field per run setting (``config_schema()``) and one per (kind, entry, option) of the
registries: ``arch__unet__base_width`` is U-Net's ``base_width``,
``method__fixmatch__confidence_threshold`` FixMatch's threshold. Every field comes from
``list_models()`` / ``list_methods()``, so a newly registered architecture, method or
option is a new field with no change to web code, and its default, range, choices and
help are the engine's.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms

from engine.methods import list_methods
from engine.models import list_models

#: Joins kind, entry and option in a field name; no registry name contains it.
SEPARATOR = "__"
_COERCE = {"int": int, "float": float, "bool": bool, "str": str}


@dataclass(frozen=True)
class Kind:
    """A registry whose entries have options: the run setting that picks the entry and the
    config key that holds the entry's options."""

    setting: str  # "arch" / "method"
    config_key: str  # "model_options" / "method_options"
    title: str
    catalogue: Callable[[], list[dict[str, Any]]]


KINDS = (Kind("arch", "model_options", "Architecture options", list_models),
         Kind("method", "method_options", "Method options", list_methods))
KIND_BY_SETTING = {kind.setting: kind for kind in KINDS}
KIND_BY_CONFIG_KEY = {kind.config_key: kind for kind in KINDS}


def option_field_name(setting: str, entry: str, option: str) -> str:
    return SEPARATOR.join((setting, entry, option))


@dataclass(frozen=True)
class OptionGroup:
    """One architecture's or method's options: a fieldset of the form."""

    kind: Kind
    entry: str
    family: str
    paper: str
    options: tuple[dict[str, Any], ...]  # Option.describe() dicts

    def field_names(self) -> list[str]:
        return [option_field_name(self.kind.setting, self.entry, option["name"]) for option in self.options]


def option_groups() -> list[OptionGroup]:
    """Every architecture's and every method's options, in registry order."""
    return [OptionGroup(kind, entry["name"], entry["family"], entry["paper"], tuple(entry["options"]))
            for kind in KINDS for entry in kind.catalogue()]


def _shown(number: int | float) -> str:
    return f"{number:,}" if isinstance(number, int) else f"{number:g}"


def help_with_range(spec: dict[str, Any]) -> str:
    """The option's help, then its range, so the page says what the field accepts."""
    if "min" in spec and "max" in spec:
        return f"{spec['help']} Range {_shown(spec['min'])} to {_shown(spec['max'])}."
    return spec["help"]


def field_for(spec: dict[str, Any]) -> forms.Field:
    """A form field for one ``Option.describe()`` dict: its type, default, range, choices and help.

    Never required: an empty field means "the engine's default".
    """
    common = {"label": spec["label"], "help_text": help_with_range(spec), "initial": spec["default"], "required": False}
    if spec.get("choices"):
        return forms.TypedChoiceField(choices=[(choice, str(choice)) for choice in spec["choices"]],
                                      coerce=_COERCE[spec["type"]], empty_value=None, **common)
    if spec["type"] == "int":
        return forms.IntegerField(min_value=spec.get("min"), max_value=spec.get("max"), **common)
    if spec["type"] == "float":
        return forms.FloatField(min_value=spec.get("min"), max_value=spec.get("max"), **common)
    if spec["type"] == "bool":
        return forms.BooleanField(**common)
    return forms.CharField(**common)


def changed_options(group: OptionGroup, cleaned_data: dict[str, Any]) -> dict[str, Any]:
    """The group's options whose field differs from the default; an empty field is the default."""
    changed = {}
    for option, name in zip(group.options, group.field_names(), strict=True):
        value = cleaned_data.get(name)
        if value is not None and value != "" and value != option["default"]:
            changed[option["name"]] = value
    return changed


def initial_options(config: dict[str, Any]) -> dict[str, Any]:
    """The option fields' values for a stored config (a clone): its architecture's and method's options."""
    return {option_field_name(kind.setting, config.get(kind.setting, ""), option): value
            for kind in KINDS for option, value in (config.get(kind.config_key) or {}).items()}
