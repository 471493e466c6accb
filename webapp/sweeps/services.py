"""Launching a sweep and reading it back: the grid's expansion and its table are the engine's (``engine.sweeps``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from engine.config import ConfigError
from engine.sweeps import Cell, Grid, Table, cell_errors, cells, cells_of, expand, grid_table
from webapp.datasets.models import Dataset
from webapp.experiments.launch import queue_run, validate_config
from webapp.experiments.models import Experiment
from webapp.sweeps.models import Sweep

#: The score the sweep table summarises: the last evaluation's mIoU of each finished run.
TABLE_SCORE = "final_miou"
MAX_NAME_LENGTH = 200


def _name_taken(name: str) -> ConfigError:
    return ConfigError({"name": f"this team already has a sweep called {name[:60]!r}; choose another name"})


def launch_sweep(dataset: Dataset, grid_values: dict[str, Any], user=None, name: str = "") -> Sweep:
    """Queue every run of the grid as one named sweep, all or nothing.

    ``grid_values``: ``methods``, ``budgets``, ``seeds``, optionally ``archs``, and ``config``
    (the base settings every run shares). Every run is validated as ``launch_experiment``
    validates one (the engine's schema, then whether it fits its dataset); when any is
    invalid, ConfigError names the run and the field, and nothing is stored.
    """
    base = dict(grid_values.get("config") or {})
    if "data" in base:
        raise ConfigError({"data": "set by the chosen dataset; leave it out"})
    grid = Grid(methods=grid_values["methods"], budgets=grid_values["budgets"], seeds=grid_values["seeds"],
                archs=grid_values.get("archs") or (None,), base=base)
    if Sweep.objects.filter(team=dataset.team, name=name).exists():
        raise _name_taken(name)
    runs = list(zip(cells(grid), expand(grid), strict=True))
    validated, failures = [], []
    for position, (cell, values) in enumerate(runs, start=1):
        try:
            validated.append(validate_config(dataset, values))
        except ConfigError as error:
            failures.append((position, cell, error.errors))
    if failures:
        raise cell_errors(failures)
    stored_grid = {"methods": list(grid.methods), "budgets": list(grid.budgets), "seeds": list(grid.seeds),
                   "archs": list(grid.archs) if grid.has_arch_axis else [], "config": base}
    try:
        with transaction.atomic():
            sweep = Sweep.objects.create(team=dataset.team, dataset=dataset, name=name, grid=stored_grid,
                                         created_by=user)
            for (cell, _), config in zip(runs, validated, strict=True):
                queue_run(dataset, config, user, run_name(sweep, config, cell), sweep=sweep)
    except IntegrityError:  # another launch took the name meanwhile
        raise _name_taken(name) from None
    return sweep


def run_name(sweep: Sweep, config: dict[str, Any], cell: Cell) -> str:
    return f"{sweep.name}: {config['arch']} {cell.method} {cell.budget} (seed {cell.seed})"[:MAX_NAME_LENGTH]


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep as its page and the API show it: its cell and how far it got."""

    experiment: Experiment
    cell: Cell

    @property
    def score(self) -> float | None:
        finished = self.experiment.status == Experiment.Status.SUCCEEDED
        return getattr(self.experiment, TABLE_SCORE) if finished else None


def sweep_runs(sweep: Sweep) -> list[SweepRun]:
    """The sweep's runs in the order they were queued (the grid's order), each with its cell."""
    experiments = list(sweep.experiments.order_by("pk"))
    return [SweepRun(experiment, cell)
            for experiment, cell in zip(experiments, cells_of(sweep.engine_grid, [e.config for e in experiments]),
                                        strict=True)]


def sweep_table(sweep: Sweep, runs: list[SweepRun]) -> Table:
    """Mean, sample sd and n of ``TABLE_SCORE`` over the succeeded runs, per method and budget."""
    results = [{"method": run.cell.method, "budget": run.cell.budget, "arch": run.cell.arch, "score": run.score}
               for run in runs]
    return grid_table(sweep.engine_grid, results)


def sweep_plot(table: Table) -> list[dict[str, Any]]:
    """The mIoU-versus-budget plot's lines (``sweep_table.js``): one per method (and architecture)."""
    return [{"method": row.method, "arch": row.arch, "budgets": list(table.budgets),
             "mean": [cell.mean for cell in row.cells], "sd": [cell.sd for cell in row.cells],
             "n": [cell.n for cell in row.cells]} for row in table.rows]
