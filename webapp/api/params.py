"""Query parameters: whole numbers within a range, or a 400 naming the parameter.

One parser for every numeric parameter (page limits and offsets, steps, point counts):
a value past the database's integer range is refused here, never handed to a query.
"""
from rest_framework.exceptions import ValidationError


def whole_number(request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    digits = raw[1:] if raw.startswith("-") else raw
    value = int(raw) if digits.isascii() and digits.isdigit() and len(digits) <= len(str(high)) else None
    if value is None or not low <= value <= high:
        raise ValidationError({name: f"expected a whole number from {low} to {high}, got {raw[:40]!r}"})
    return value
