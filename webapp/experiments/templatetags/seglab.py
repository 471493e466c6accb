"""Scores as every page shows them: percent with one decimal (0.2013 -> 20.1), "—" when absent."""
from django import template

register = template.Library()


@register.filter
def percent(value) -> str:
    if value is None or value == "":
        return "—"
    return f"{100 * float(value):.1f}"
