"""Typed, validated options: the one description of a hyper-parameter.

The same `Option` drives validation in the engine, the web form, the API schema and
the CLI help, so none of them repeats a default, a range or a help text.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class OptionError(ValueError):
    """Invalid option values; ``errors`` maps each field name to what is wrong."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.errors.items()))


_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
JSON_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}


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

    def __post_init__(self) -> None:
        # A number without a range lets 10^30 through to a run that cannot use it: every
        # numeric option states its range (or its choices), once, here.
        if self.type in ("int", "float") and self.choices is None and (self.min is None or self.max is None):
            raise TypeError(f"option {self.name!r}: a numeric option needs min and max (or choices)")

    def describe(self) -> dict[str, Any]:
        described = {"name": self.name, "label": self.label or self.name.replace("_", " ").capitalize(),
                     "type": self.type, "default": self.default, "help": self.help}
        for key in ("min", "max", "choices"):
            value = getattr(self, key)
            if value is not None:
                described[key] = list(value) if key == "choices" else value
        return described

    def json_schema(self) -> dict[str, Any]:
        """This option as JSON Schema (the API's OpenAPI schema shows it to client generators)."""
        schema: dict[str, Any] = {"type": JSON_TYPES[self.type], "title": self.describe()["label"],
                                  "description": self.help, "default": self.default}
        if self.min is not None:
            schema["minimum"] = self.min
        if self.max is not None:
            schema["maximum"] = self.max
        if self.choices is not None:
            schema["enum"] = list(self.choices)
        return schema

    def clean(self, value: Any) -> Any:
        """Return `value` converted to this option's type or raise ValueError saying why."""
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                return value.lower() in ("true", "1", "yes", "on")
            raise ValueError(f"expected true or false, got {_show(value)}")
        if self.type in ("int", "float"):
            number = _number(value, whole=self.type == "int")
            if self.min is not None and number < self.min:
                raise ValueError(f"must be at least {_show(self.min)}, got {_show(number)}")
            if self.max is not None and number > self.max:
                raise ValueError(f"must be at most {_show(self.max)}, got {_show(number)}")
            value = number
        elif self.type == "str":
            if not isinstance(value, str):
                raise ValueError(f"expected text, got {_show(value)}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"must be one of {', '.join(map(str, self.choices))}; got {_show(value)}")
        return value


def _number(value: Any, whole: bool) -> int | float:
    """A finite int or float from JSON or form text; never a rounded 1e30 or a NaN."""
    shown = _show(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number, got {shown}")
    if whole and isinstance(value, int):
        return value
    if whole and isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise ValueError(f"expected a number, got {shown}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {shown}")
    if whole:
        if not number.is_integer():
            raise ValueError(f"expected a whole number, got {shown}")
        return int(number)
    return number


def shorten(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters, so an error never echoes a huge value whole."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(value: Any, limit: int = 40) -> str:
    """A value as an error message quotes it: short, whatever the user sent."""
    return shorten(repr(value), limit)


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
