"""Changing a dataset's name, description, class names and display colours: all or nothing.

Pages read the row (``Dataset.classes``); runs read the folder's ``dataset.json``
(``engine.data.load_index``). Both change in one step: everything is checked, the row is
updated inside a transaction, the engine rewrites the description (``relabel_classes``,
which checks names and colours as it checks classes.json's) and the preview sheet is
redrawn. If the engine refuses, the transaction rolls back and nothing has changed.
classes.json is never touched, so RGB masks are still decoded through its colours.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from django.db import IntegrityError, transaction

from engine.data import DatasetError
from engine.data.index import relabel_classes
from webapp.datasets.ingest import write_preview
from webapp.datasets.models import MAX_DESCRIPTION_LENGTH, Dataset

MAX_NAME_LENGTH = Dataset._meta.get_field("name").max_length
_CLASS_PROBLEM = re.compile(r"class (\d+)\b")

logger = logging.getLogger(__name__)


class UpdateRefused(ValueError):
    """A refused change; ``fields`` maps each field to what is wrong with it, in the user's words.

    ``by_class`` maps a class index to the problems that name that class, so a form can
    show each one beside the class it is about.
    """

    def __init__(self, fields: dict[str, str], by_class: dict[int, list[str]] | None = None):
        self.fields = fields
        self.by_class = by_class or {}
        super().__init__("; ".join(f"{field}: {message}" for field, message in fields.items()))


def update_dataset(dataset: Dataset, name: str | None = None, description: str | None = None,
                   classes: list[dict] | None = None) -> Dataset:
    """The updated row; raises UpdateRefused naming every refused field, with nothing changed.

    ``classes`` lists the classes to change, ``{"index": i, "name": ..., "color": ...}`` with
    the name and the colour each optional; a colour is ``"#rrggbb"`` or ``[r, g, b]``.
    """
    with transaction.atomic():
        row = Dataset.objects.select_for_update().get(pk=dataset.pk)
        problems = {}
        if name is not None and (problem := _name_problem(row, name)):
            problems["name"] = problem
        if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
            problems["description"] = (f"is {len(description)} characters long; "
                                       f"at most {MAX_DESCRIPTION_LENGTH} are allowed")
        if classes:
            names, colors, problem = _changed_classes(row.classes, classes)
            if problem:
                problems["classes"] = problem
        if problems:
            raise UpdateRefused(problems)
        row.name = row.name if name is None else name
        row.description = row.description if description is None else description
        try:
            row.save(update_fields=["name", "description"])
        except IntegrityError:  # another request took the name since the check
            raise UpdateRefused({"name": _clash(name)}) from None
        if classes:
            _relabel(row, names, colors)
    return row


def _name_problem(row: Dataset, name: str) -> str | None:
    if not name.strip():
        return "must not be blank"
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed"
    if Dataset.objects.filter(team=row.team_id, name=name).exclude(pk=row.pk).exists():
        return _clash(name)
    return None


def _clash(name: str) -> str:
    return f"the team already has a dataset named {name!r}; choose another name"


def _changed_classes(current: list[dict], changes: list[dict]) -> tuple[list[str], list, str]:
    """Every class's name and colour once ``changes`` are applied, and what is wrong with the changes."""
    names = [entry["name"] for entry in current]
    colors = [entry["color"] for entry in current]
    problems, seen = [], set()
    for change in changes:
        i = change["index"]
        if not 0 <= i < len(current):
            problems.append(f"class {i}: no such class; the dataset has classes 0-{len(current) - 1}")
        elif i in seen:
            problems.append(f"class {i}: given more than once; list each class once")
        else:
            seen.add(i)
            names[i] = change.get("name", names[i])
            colors[i] = change.get("color", colors[i])
    return names, colors, "; ".join(problems)


def _relabel(row: Dataset, names: list[str], colors: list) -> None:
    """Rewrite the description, then the row's class table, then the preview; raises UpdateRefused."""
    before = ([entry["name"] for entry in row.classes], [entry["color"] for entry in row.classes])
    try:
        info = relabel_classes(row.path, names, colors)
    except DatasetError as error:
        raise UpdateRefused({"classes": str(error)}, _by_class(error.errors)) from None
    row.classes = _with_labels(row.classes, info.classes)
    row.info = {**row.info, "classes": _with_labels(row.info.get("classes", row.classes), info.classes)}
    row.save(update_fields=["classes", "info"])
    try:
        write_preview(row.path)
    except DatasetError as error:
        _put_back(row.path, *before)
        raise UpdateRefused({"classes": f"nothing was changed: {error}"}) from None


def _by_class(errors: list[tuple[str, str]]) -> dict[int, list[str]]:
    """The engine's problems that begin "class <i>" (``relabel_classes`` names the class first), by class."""
    found: dict[int, list[str]] = {}
    for _, message in errors:
        if match := _CLASS_PROBLEM.match(message):
            found.setdefault(int(match.group(1)), []).append(message)
    return found


def _with_labels(entries: list[dict], described: list[dict]) -> list[dict]:
    """``entries`` (the row's class table) with the names and colours of the rewritten description."""
    return [{**entry, "name": new["name"], "color": new["color"]}
            for entry, new in zip(entries, described, strict=True)]


def _put_back(folder: Path, names: list[str], colors: list[str]) -> None:
    """The description and preview as they were, once the new preview could not be drawn."""
    try:
        relabel_classes(folder, names, colors)
        write_preview(folder)
    except DatasetError:
        logger.exception("restoring the classes of %s after a failed preview failed too", folder)
