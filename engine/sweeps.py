"""Sweeps: a grid of runs (methods x label budgets x seeds, optionally architectures) and its table.

A sweep is a named group of runs launched together. The web (``POST /api/v1/sweeps/``) and
``bench/ssl_sweep.py`` both expand their grid here and summarise their results here, so the
benchmark and the web cannot disagree about which runs a sweep holds, in which order, or
what its table says.

Order (``cells``, ``expand``): seed-major, then label budget, then architecture, with the
method changing fastest::

    for seed in seeds: for budget in budgets: for arch in archs: for method in methods

so a queue worked from the front (or a sweep cut short) has one seed of every cell first:
the screening.

A method is ``NAME`` (its documented defaults) or ``NAME:OPTION=VALUE[,OPTION=VALUE]``,
whose options go to ``method_options`` on top of the base settings' own.
"""
from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from engine.config import FIELD_BY_NAME, ConfigError, RunConfig
from engine.data.budget import parse_labeled
from engine.methods import METHODS
from engine.models import MODELS
from engine.options import OptionError, clean_options
from engine.registry import RegistryError

#: Most runs one sweep may hold: a grid past it is refused, not queued.
MAX_RUNS = 500
#: Per-cell errors listed in one ConfigError; the rest are counted.
MAX_REPORTED_ERRORS = 20
#: Other cells with the same error named beside the first one.
MAX_NAMED_ALSO = 5
#: The run setting each axis sets: the base settings must leave these to the grid.
AXIS_SETTINGS = {"methods": "method", "budgets": "labeled", "seeds": "seed", "archs": "arch"}


def parse_method(spec: str) -> tuple[str, dict[str, str]]:
    """``unimatch`` or ``unimatch:threshold_mode=distribution,feature_dropout=0.3`` -> (name, options)."""
    name, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, equals, value = item.partition("=")
        if not equals:
            raise ValueError(f"method option {item!r} of {spec!r} is not NAME=VALUE")
        options[key] = value
    return name, options


@dataclass(frozen=True)
class Cell:
    """One run of a grid: its method (spec), label budget, seed, and architecture (None: the base settings')."""

    method: str
    budget: str
    seed: int
    arch: str | None = None

    def __str__(self) -> str:
        arch = f"{self.arch} " if self.arch is not None else ""
        return f"{arch}{self.method}, labels {self.budget}, seed {self.seed}"


@dataclass(frozen=True)
class Grid:
    """The axes of a sweep and the base settings every run shares (flat run settings, ``engine.config``).

    Budgets are kept as text (a JSON count ``16`` becomes ``"16"``, as ``RunConfig`` stores it).
    ``archs=(None,)`` means no architecture axis: every run takes the base settings' architecture.
    """

    methods: tuple[str, ...]
    budgets: tuple[str, ...]
    seeds: tuple[int, ...]
    archs: tuple[str | None, ...] = (None,)
    base: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        budgets = tuple(str(b) if isinstance(b, (int, float)) and not isinstance(b, bool) else b for b in self.budgets)
        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "budgets", budgets)
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "archs", tuple(self.archs) or (None,))

    @property
    def has_arch_axis(self) -> bool:
        return self.archs != (None,)

    @property
    def size(self) -> int:
        return len(self.methods) * len(self.budgets) * len(self.seeds) * len(self.archs)


def _duplicate(values: Sequence[Any], key=lambda value: value) -> str | None:
    """The first value whose key an earlier value already had, described."""
    seen: dict[Any, Any] = {}
    for value in values:
        try:
            marker = key(value)
        except (ValueError, TypeError):
            marker = ("unparsed", repr(value))
        if marker in seen:
            earlier = seen[marker]
            return repr(value) if earlier == value else f"{value!r} (the same as {earlier!r})"
        seen[marker] = value
    return None


def _budget_key(budget: Any) -> Any:
    return parse_labeled(budget)


def _method_key(spec: Any) -> Any:
    name, options = parse_method(spec)
    return name, tuple(sorted(options.items()))


def _check_axes(grid: Grid, max_runs: int | None) -> None:
    """Refuse empty axes, values of the wrong type, duplicates, settings the axes own, and oversized grids."""
    errors: dict[str, str] = {}
    kinds = {"methods": (grid.methods, str, "method names (NAME or NAME:OPTION=VALUE,...)"),
             "budgets": (grid.budgets, str, "label budgets like 1/8, all or 16"),
             "seeds": (grid.seeds, int, "whole numbers")}
    if grid.has_arch_axis:
        kinds["archs"] = (grid.archs, str, "architecture names")
    for axis, (values, kind, described) in kinds.items():
        if not values:
            errors[axis] = f"empty: give at least one of the {described}"
            continue
        wrong = next((value for value in values if not isinstance(value, kind) or isinstance(value, bool)
                      or (isinstance(value, str) and not value.strip())), None)
        if wrong is not None:
            errors[axis] = f"expected {described}; got {wrong!r}"[:200]
            continue
        key = {"budgets": _budget_key, "methods": _method_key}.get(axis, lambda value: value)
        duplicate = _duplicate(values, key)
        if duplicate is not None:
            errors[axis] = f"{duplicate} is given twice; each value may appear once"[:200]
    if not isinstance(grid.base, Mapping):
        errors["config"] = "expected an object of run settings"
    else:
        for axis, setting in AXIS_SETTINGS.items():
            if setting in grid.base and (axis != "archs" or grid.has_arch_axis):
                errors[setting] = f"set by the grid's {axis}; leave it out of the base settings"
    if errors:
        raise ConfigError(errors)
    if max_runs is not None and grid.size > max_runs:
        axes = f"{len(grid.methods)} methods x {len(grid.budgets)} budgets x {len(grid.seeds)} seeds"
        if grid.has_arch_axis:
            axes += f" x {len(grid.archs)} architectures"
        raise ConfigError({"grid": f"{grid.size} runs ({axes}) is more than the {max_runs} one sweep may hold; "
                                   "split it into several sweeps"})


def cells(grid: Grid, *, max_runs: int | None = MAX_RUNS) -> list[Cell]:
    """Every run of ``grid``, in the sweep order (seed, budget, architecture, method); checks the axes only."""
    _check_axes(grid, max_runs)
    return [Cell(method, budget, seed, arch)
            for seed in grid.seeds for budget in grid.budgets for arch in grid.archs for method in grid.methods]


def run_settings(base: Mapping[str, Any], cell: Cell) -> dict[str, Any]:
    """The flat settings of one cell (not validated): the base settings, then the cell's axes."""
    name, options = parse_method(cell.method)
    settings = {**base, "method": name, "method_options": {**(base.get("method_options") or {}), **options},
                "labeled": cell.budget, "seed": cell.seed}
    if cell.arch is not None:
        settings["arch"] = cell.arch
    return settings


def _check_values(grid: Grid) -> None:
    """Unknown methods or architectures, method specs that are not NAME=VALUE, budgets and seeds
    the engine refuses: named by their axis, not once per run."""
    errors: dict[str, str] = {}
    for budget in grid.budgets:
        try:
            parse_labeled(budget)
        except ValueError as error:
            errors.setdefault("budgets", str(error))
    for seed in grid.seeds:
        try:
            FIELD_BY_NAME["seed"].option.clean(seed)
        except ValueError as error:
            errors.setdefault("seeds", f"seed {seed}: {error}")
    for spec in grid.methods:
        try:
            METHODS.get(parse_method(spec)[0])
        except (ValueError, RegistryError) as error:
            errors.setdefault("methods", str(error))
    for arch in grid.archs if grid.has_arch_axis else ():
        try:
            MODELS.get(str(arch))
        except RegistryError as error:
            errors.setdefault("archs", str(error))
    if errors:
        raise ConfigError(errors)


def cell_errors(failures: Iterable[tuple[int, Cell, Mapping[str, str]]]) -> ConfigError:
    """One ConfigError for the invalid cells: each field keyed by the run it belongs to.

    ``failures`` are (position from 1, cell, field -> message). A message that several runs
    share (a budget the dataset cannot fill fails at every seed) is listed once, under its
    first run, naming the others.
    """
    first: dict[tuple[str, str], tuple[int, Cell]] = {}
    others: dict[tuple[str, str], list[int]] = {}
    for position, cell, errors in failures:
        for name, message in errors.items():
            key = (name, message)
            if key in first:
                others.setdefault(key, []).append(position)
            else:
                first[key] = (position, cell)
    fields: dict[str, str] = {}
    for (name, message), (position, cell) in list(first.items())[:MAX_REPORTED_ERRORS]:
        also = others.get((name, message), [])
        if also:
            shown = ", ".join(map(str, also[:MAX_NAMED_ALSO]))
            more = f" and {len(also) - MAX_NAMED_ALSO} more" if len(also) > MAX_NAMED_ALSO else ""
            message = f"{message} (also runs {shown}{more})"
        fields[f"run {position} ({cell}): {name}"] = message
    if len(first) > MAX_REPORTED_ERRORS:
        fields["grid"] = f"{len(first) - MAX_REPORTED_ERRORS} more errors in other runs"
    return ConfigError(fields)


def expand(grid: Grid, *, max_runs: int | None = MAX_RUNS) -> list[dict[str, Any]]:
    """Each run's flat settings (base + arch/method/labeled/seed), in the order of ``cells``.

    Every run is validated with the engine's schema (``RunConfig.from_flat``, without the data
    path); invalid runs raise one ConfigError whose fields name the run and the field,
    e.g. ``"run 3 (cutmix, labels 1/16, seed 0): method_options.threshold"``. Nothing is
    returned unless every run is valid. The settings are the ones asked for, not the
    effective config: the caller validates them against its dataset (and fills defaults).
    """
    grid_cells = cells(grid, max_runs=max_runs)
    _check_values(grid)
    runs, failures = [], []
    for position, cell in enumerate(grid_cells, start=1):
        settings = run_settings(grid.base, cell)
        try:
            RunConfig.from_flat(settings, require_data=False)
        except ConfigError as error:
            failures.append((position, cell, error.errors))
        runs.append(settings)
    if failures:
        raise cell_errors(failures)
    return runs


def cells_of(grid: Grid, configs: Iterable[Mapping[str, Any]]) -> list[Cell]:
    """The cell each run's validated flat config belongs to (a web sweep's runs, read back).

    A method spec is recognised by its name and its full cleaned options; a run that matches
    no spec (its method's defaults changed since it was launched) is labelled by its method name.
    """
    specs: dict[tuple[str, str], str] = {}
    base_options = grid.base.get("method_options") or {}
    for spec in grid.methods:
        name, options = parse_method(spec)
        try:
            cleaned = clean_options(METHODS.get(name).options, {**base_options, **options})
        except (OptionError, RegistryError):
            continue
        specs[(name, repr(sorted(cleaned.items())))] = spec
    found = []
    for config in configs:
        cleaned_options = repr(sorted((config.get("method_options") or {}).items()))
        method = specs.get((config["method"], cleaned_options), config["method"])
        arch = config.get("arch") if grid.has_arch_axis else None
        found.append(Cell(method, str(config.get("labeled")), config["seed"], arch))
    return found


# -- the table ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Summary:
    """The scores of one method at one budget over seeds: mean, sample standard deviation, count."""

    budget: str
    mean: float | None  # None: no run has a score yet
    sd: float | None  # None below two scores (one seed has no spread)
    n: int


@dataclass(frozen=True)
class Row:
    method: str
    arch: str | None
    cells: tuple[Summary, ...]  # one per Table.budgets, in that order


@dataclass(frozen=True)
class Table:
    budgets: tuple[str, ...]
    rows: tuple[Row, ...]

    def cell(self, method: str, budget: str, arch: str | None = None) -> Summary:
        row = next(row for row in self.rows if row.method == method and row.arch == arch)
        return row.cells[self.budgets.index(budget)]


def budget_order(budgets: Iterable[str]) -> list[str]:
    """Budgets smallest first: counts (16, 32), then fractions by value (1/16 ... 1/2, all, as
    ``engine.data.budget.STANDARD_BUDGETS``); text that is no budget keeps its place at the end."""
    def key(indexed: tuple[int, str]) -> tuple[int, Fraction | int, int]:
        index, budget = indexed
        try:
            value = parse_labeled(budget)
        except ValueError:
            return 2, 0, index
        return (0, value, index) if isinstance(value, int) else (1, value, index)

    return [budget for _, budget in sorted(enumerate(dict.fromkeys(budgets)), key=key)]


def summarize(results: Iterable[Mapping[str, Any]], *, score: str = "score", methods: Sequence[str] | None = None,
              budgets: Sequence[str] | None = None, archs: Sequence[str | None] | None = None) -> Table:
    """For each (architecture, method) row and each budget: mean, sample sd and n of ``score`` over seeds.

    ``results`` are mappings with ``method``, ``budget``, optionally ``arch``, and ``score``;
    a result whose score is missing or None (a run not finished) is left out. Rows go
    architecture by architecture, methods in the order given (else first seen); budgets in
    the order given (else ``budget_order``). A result outside the given lists is left out.
    """
    results = list(results)
    methods = list(dict.fromkeys(r["method"] for r in results)) if methods is None else list(methods)
    budgets = budget_order(r["budget"] for r in results) if budgets is None else list(budgets)
    if archs is None:
        archs = list(dict.fromkeys(r.get("arch") for r in results)) or [None]
    scores: dict[tuple[str | None, str, str], list[float]] = {}
    for result in results:
        value = result.get(score)
        if value is not None:
            scores.setdefault((result.get("arch"), result["method"], result["budget"]), []).append(value)
    rows = []
    for arch in archs:
        for method in methods:
            summaries = []
            for budget in budgets:
                values = scores.get((arch, method, budget), [])
                summaries.append(Summary(budget, statistics.mean(values) if values else None,
                                         statistics.stdev(values) if len(values) > 1 else None, len(values)))
            rows.append(Row(method, arch, tuple(summaries)))
    return Table(tuple(budgets), tuple(rows))



def grid_table(grid: Grid, results: Iterable[Mapping[str, Any]], *, score: str = "score") -> Table:
    """``summarize`` with every cell of ``grid`` shown, filled or not: its methods and architectures
    in the grid's order, its budgets smallest first (``budget_order``)."""
    return summarize(results, score=score, methods=grid.methods, budgets=budget_order(grid.budgets), archs=grid.archs)
