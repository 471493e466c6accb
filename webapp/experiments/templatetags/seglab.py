"""Template filters: scores as every page shows them (percent with one decimal, 0.2013 -> 20.1, "—" when
absent), and a dataset's class colours for pages that colour masks themselves."""
from django import template

register = template.Library()


@register.filter
def percent(value) -> str:
    if value is None or value == "":
        return "—"
    return f"{100 * float(value):.1f}"


@register.filter
def class_colors(classes) -> list:
    """A dataset's class colours in class order (for pages that colour masks themselves)."""
    return [entry.get("color") for entry in sorted(classes, key=lambda entry: entry.get("index", 0))]
