"""Typed, validated options: the one description of a hyper-parameter.

The same `Option` drives validation in the engine, the web form, the API schema and
the CLI help, so none of them repeats a default, a range or a help text.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping


class OptionError(ValueError):
    """Invalid option values; ``errors`` maps each field name to what is wrong."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.errors.items()))


_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


@dataclass(frozen=True)
class Option:
    name: str
    type: str  # one of "int", "float", "bool", "str"
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    label: str = ""  # what a form shows; defaults to the name in words

    def describe(self) -> dict[str, Any]:
        described = {"name": self.name, "label": self.label or self.name.replace("_", " ").capitalize(),
                     "type": self.type, "default": self.default, "help": self.help}
        for key in ("min", "max", "choices"):
            value = getattr(self, key)
            if value is not None:
                described[key] = list(value) if key == "choices" else value
        return described

    def clean(self, value: Any) -> Any:
        """Return `value` converted to this option's type or raise ValueError saying why."""
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                return value.lower() in ("true", "1", "yes", "on")
            raise ValueError(f"expected true or false, got {value!r}")
        if self.type in ("int", "float"):
            if isinstance(value, bool):
                raise ValueError(f"expected a number, got {value!r}")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"expected a number, got {value!r}") from None
            if self.type == "int":
                if number != int(number):
                    raise ValueError(f"expected a whole number, got {value!r}")
                number = int(number)
            if self.min is not None and number < self.min:
                raise ValueError(f"must be at least {self.min}, got {number}")
            if self.max is not None and number > self.max:
                raise ValueError(f"must be at most {self.max}, got {number}")
            value = number
        elif self.type == "str":
            if not isinstance(value, str):
                raise ValueError(f"expected text, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"must be one of {', '.join(map(str, self.choices))}; got {value!r}")
        return value


def clean_options(options: Iterable[Option], values: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """Fill defaults, convert types, and refuse unknown or invalid values (all at once)."""
    values = dict(values or {})
    cleaned: dict[str, Any] = {}
    errors: dict[str, str] = {}
    known = {option.name: option for option in options}
    for name in values:
        if name not in known:
            valid = ", ".join(known) or "none"
            errors[prefix + name] = f"unknown option; valid options: {valid}"
    for name, option in known.items():
        if name not in values:
            cleaned[name] = option.default
            continue
        try:
            cleaned[name] = option.clean(values[name])
        except ValueError as error:
            errors[prefix + name] = str(error)
    if errors:
        raise OptionError(errors)
    return cleaned
