"""engine.sweeps: a grid expands to its runs in one documented order, invalid cells are named, the table is
mean, sd and n."""
from __future__ import annotations

import statistics

import pytest

from engine.config import ConfigError, RunConfig
from engine.data.budget import STANDARD_BUDGETS
from engine.sweeps import MAX_RUNS, Cell, Grid, budget_order, cells, cells_of, expand, grid_table, summarize
from tests.engine.conftest import TINY_UNET

BASE = {"model_options": TINY_UNET, "iters": 4, "device": "cpu"}


def test_a_grid_expands_seed_major_with_the_method_fastest():
    grid = Grid(methods=("supervised", "fixmatch"), budgets=("1/8", "16"), seeds=(0, 1), archs=("unet", "segformer_b0"),
                base={"iters": 4})

    runs = expand(grid)

    assert len(runs) == 2 * 2 * 2 * 2 == grid.size
    order = [(run["seed"], run["labeled"], run["arch"], run["method"]) for run in runs]
    assert order[:5] == [(0, "1/8", "unet", "supervised"), (0, "1/8", "unet", "fixmatch"),
                         (0, "1/8", "segformer_b0", "supervised"), (0, "1/8", "segformer_b0", "fixmatch"),
                         (0, "16", "unet", "supervised")]
    assert order[8] == (1, "1/8", "unet", "supervised")
    assert all(run["iters"] == 4 for run in runs)
    assert [(c.seed, c.budget, c.arch, c.method) for c in cells(grid)] == order


def test_without_an_architecture_axis_the_base_architecture_is_used():
    runs = expand(Grid(methods=("supervised",), budgets=(16,), seeds=(3,), base={**BASE, "arch": "unet"}))

    assert runs == [{**BASE, "arch": "unet", "method": "supervised", "method_options": {}, "labeled": "16", "seed": 3}]
    assert RunConfig.from_flat(runs[0], require_data=False).budget.labeled == "16"


def test_a_method_spec_adds_its_options_to_the_base_ones():
    grid = Grid(methods=("unimatch", "unimatch:threshold_mode=distribution"), budgets=("1/8",), seeds=(0,),
                base={"method_options": {"confidence_threshold": 0.9}})

    plain, distribution = expand(grid)

    assert plain["method"] == distribution["method"] == "unimatch"
    assert plain["method_options"] == {"confidence_threshold": 0.9}
    assert distribution["method_options"] == {"confidence_threshold": 0.9, "threshold_mode": "distribution"}


def test_an_invalid_cell_is_named_by_its_run_and_field():
    grid = Grid(methods=("fixmatch", "supervised"), budgets=("1/8", "1/4"), seeds=(0, 1),
                base={"method_options": {"confidence_threshold": 0.9}})

    with pytest.raises(ConfigError) as caught:
        expand(grid)

    errors = caught.value.errors
    key = "run 2 (supervised, labels 1/8, seed 0): method_options.confidence_threshold"
    assert list(errors) == [key]  # the same error of the other supervised runs is listed once
    assert errors[key].startswith("unknown option; valid options: aux_weight")
    assert errors[key].endswith("(also runs 4, 6, 8)")


def test_an_invalid_base_setting_names_the_cells_it_breaks():
    with pytest.raises(ConfigError) as caught:
        expand(Grid(methods=("supervised",), budgets=("1/8",), seeds=(0,), archs=("unet", "segformer_b0"),
                    base={"model_options": TINY_UNET}))

    cell = "run 2 (segformer_b0 supervised, labels 1/8, seed 0)"
    assert list(caught.value.errors) == [f"{cell}: model_options.base_width", f"{cell}: model_options.depth"]


@pytest.mark.parametrize("changes, field, message", [
    ({"methods": ()}, "methods", "empty: give at least one"),
    ({"budgets": ()}, "budgets", "empty"),
    ({"seeds": ()}, "seeds", "empty"),
    ({"archs": ("unet", 7)}, "archs", "expected architecture names; got 7"),
    ({"seeds": (0, True)}, "seeds", "expected whole numbers; got True"),
    ({"seeds": (0, 1, 0)}, "seeds", "0 is given twice"),
    ({"budgets": ("1/8", "0.125")}, "budgets", "'0.125' (the same as '1/8') is given twice"),
    ({"budgets": ("all", "1/1")}, "budgets", "given twice"),
    ({"methods": ("cps", "cps")}, "methods", "'cps' is given twice"),
    ({"archs": ("unet", "unet")}, "archs", "given twice"),
    ({"methods": ("supervised", "unimatch:fast")}, "methods", "is not NAME=VALUE"),
    ({"methods": ("superviced",)}, "methods", "Unknown method `superviced`; choose one of:"),
    ({"archs": ("unett",)}, "archs", "Unknown architecture `unett`"),
    ({"budgets": ("1/8", "3/2")}, "budgets", "a fraction of labelled images must be in (0, 1]"),
    ({"seeds": (-1,)}, "seeds", "seed -1: must be at least 0"),
    ({"base": {"labeled": "1/2"}}, "labeled", "set by the grid's budgets; leave it out of the base settings"),
    ({"base": {"method": "cps"}}, "method", "set by the grid's methods"),
    ({"archs": ("unet",), "base": {"arch": "unet"}}, "arch", "set by the grid's archs"),
])
def test_axes_are_checked_before_any_run(changes, field, message):
    values = {"methods": ("supervised",), "budgets": ("1/8",), "seeds": (0,), **changes}

    with pytest.raises(ConfigError) as caught:
        expand(Grid(**values))

    assert message in caught.value.errors[field]


def test_a_grid_over_the_limit_is_refused_whole():
    seeds = tuple(range(MAX_RUNS // 2 + 1))
    grid = Grid(methods=("supervised", "cps"), budgets=("1/8",), seeds=seeds)

    with pytest.raises(ConfigError) as caught:
        cells(grid)

    assert caught.value.errors["grid"] == (f"{2 * len(seeds)} runs (2 methods x 1 budgets x {len(seeds)} seeds) is "
                                           f"more than the {MAX_RUNS} one sweep may hold; split it into several sweeps")
    assert len(cells(grid, max_runs=None)) == 2 * len(seeds)
    assert len(expand(Grid(methods=("supervised",), budgets=("1/8",), seeds=tuple(range(MAX_RUNS))))) == MAX_RUNS


def test_cells_of_reads_back_each_runs_cell_from_its_validated_config():
    grid = Grid(methods=("unimatch", "unimatch:threshold_mode=distribution"), budgets=("1/8", 16), seeds=(0,))
    configs = [RunConfig.from_flat(run, require_data=False).to_flat() for run in expand(grid)]

    assert cells_of(grid, configs) == cells(grid)
    assert cells_of(grid, [{**configs[0], "method": "cps"}]) == [Cell("cps", "1/8", 0)]  # no spec: its method name


def test_summarize_gives_mean_sample_sd_and_n_over_seeds():
    results = [{"method": "supervised", "budget": "1/8", "score": s} for s in (0.2, 0.3, 0.4)]
    results += [{"method": "supervised", "budget": "16", "score": 0.5},
                {"method": "supervised", "budget": "16", "score": None},  # not finished: left out
                {"method": "cps", "budget": "1/16", "score": 0.1}]

    table = summarize(results)

    assert table.budgets == ("16", "1/16", "1/8")  # counts, then fractions by value
    three = table.cell("supervised", "1/8")
    assert three.n == 3 and three.mean == pytest.approx(0.3) and three.sd == pytest.approx(0.1)
    assert three.sd == statistics.stdev([0.2, 0.3, 0.4])
    one = table.cell("supervised", "16")
    assert (one.mean, one.sd, one.n) == (0.5, None, 1)
    empty = table.cell("cps", "1/8")
    assert (empty.mean, empty.sd, empty.n) == (None, None, 0)
    assert [row.method for row in table.rows] == ["supervised", "cps"]


def test_budgets_are_ordered_as_the_standard_ones():
    assert budget_order(["all", "1/2", "32", "1/16", "8", "1/4", "1/8"]) == ["8", "32", *STANDARD_BUDGETS]


def test_a_grid_table_shows_every_cell_with_rows_per_architecture():
    grid = Grid(methods=("cps", "supervised"), budgets=("1/4", "1/16"), seeds=(0, 1), archs=("unet", "segformer_b0"))
    results = [{"method": "supervised", "budget": "1/4", "arch": "segformer_b0", "score": 0.6}]

    table = grid_table(grid, results)

    assert table.budgets == ("1/16", "1/4")
    assert [(row.arch, row.method) for row in table.rows] == [("unet", "cps"), ("unet", "supervised"),
                                                              ("segformer_b0", "cps"), ("segformer_b0", "supervised")]
    assert table.cell("supervised", "1/4", "segformer_b0").mean == 0.6
    assert table.cell("supervised", "1/4", "unet").n == 0


def test_the_benchmark_plans_and_configures_the_runs_the_engine_expands(tmp_path, monkeypatch):
    import bench.ssl_sweep as sweep

    methods, budgets, seeds = ["supervised", "unimatch:threshold_mode=distribution"], ["16", "1/16"], [0, 1]
    planned = []

    def record_and_skip(path, settings, method, budget, seed):
        planned.append((method, budget, seed))
        return True  # as if another sweep had trained it: nothing trains here

    monkeypatch.setattr(sweep, "finished_elsewhere", record_and_skip)
    assert sweep.main(["--data", str(tmp_path), "--results", str(tmp_path / "r.json"),
                       "--table", str(tmp_path / "t.md"), "--methods", *methods, "--budgets", *budgets,
                       "--seeds", *map(str, seeds)]) == 0

    grid = Grid(methods=methods, budgets=budgets, seeds=seeds,
                base={**sweep.RUN_SETTINGS, "data": "d", "arch": sweep.DEFAULT_ARCH,
                      "model_options": sweep.DEFAULT_ARCH_OPTIONS, "iters": 30, "eval_every": 10, "device": "cpu",
                      "num_workers": 0, "min_scale": 1.0, "max_scale": 1.0, "strong_blur": "crop"})
    assert planned == [(c.method, c.budget, c.seed) for c in cells(grid)]
    for cell, run in zip(cells(grid), expand(grid), strict=True):
        bench_config = sweep.run_config("d", sweep.DEFAULT_ARCH, sweep.DEFAULT_ARCH_OPTIONS, cell.method, cell.budget,
                                        cell.seed, 30)
        assert bench_config == RunConfig.from_flat(run)


def test_the_benchmark_table_is_the_engine_summary():
    from bench.ssl_page import markdown_table

    runs = [{"seed": 0, "miou": 0.21}, {"seed": 1, "miou": 0.25}, {"seed": 2, "miou": 0.2}]
    stored = {"settings": {"data": "d", "arch": "unet", "arch_options": {}, "iters": 1, "min_scale": 1, "max_scale": 1},
              "results": {"cutmix": {"1/16": runs}}}

    scores = [{"method": "cutmix", "budget": "1/16", "score": 100 * run["miou"]} for run in runs]
    cell = summarize(scores).cell("cutmix", "1/16")

    assert f"| cutmix | {cell.mean:.1f} +- {cell.sd:.1f} ({cell.n}) |" in markdown_table(stored)


def test_the_benchmark_refuses_a_seed_given_twice(tmp_path, capsys):
    import bench.ssl_sweep as sweep

    with pytest.raises(SystemExit):
        sweep.main(["--data", str(tmp_path), "--results", str(tmp_path / "r.json"), "--seeds", "0", "0",
                    "--methods", "supervised"])
    assert "seeds: 0 is given twice" in capsys.readouterr().err and not (tmp_path / "r.json").exists()
