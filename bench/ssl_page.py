"""docs/results.md from bench/results/ssl.json: the one writer of the semi-supervised results page.

The page is a pure function of the results file and the hand-written findings below
``NOTES_MARKER``, so page and file cannot disagree: ``bench/ssl_sweep.py`` rewrites it
after every run, ``bench/ssl_sweep.py --page`` rewrites it without training, and
tests/bench/test_results_page.py checks that the committed page is what it would write.

Reading order: the reference table (each method at its documented defaults, mean +- sample
standard deviation over seeds, n), how far each is from supervised and on how many of the
same seeds, the command that reproduces it, then per-seed, per-class and ablation tables,
then the findings.
"""
from __future__ import annotations

import json
import shlex
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

#: Everything below this line in the page is hand-written analysis and is kept.
NOTES_MARKER = "<!-- findings: kept by ssl_sweep.py -->"
#: The reference results file, as the page and its commands name it.
RESULTS = "bench/results/ssl.json"
#: The row the others are measured against.
BASELINE = "supervised"


def runs_of(stored: dict[str, Any]) -> list[dict[str, Any]]:
    """Every run of a results file, each with its ``method`` and ``budget``."""
    return [{"method": method, "budget": budget, **run}
            for method, by_budget in stored["results"].items() for budget, runs in by_budget.items() for run in runs]


def _method_order(methods: list[str]) -> list[str]:
    """The baseline, then the registry's order (a paper's method before its ablations), then the rest as found."""
    from engine.methods import METHODS

    registered = METHODS.names()
    base = [name.split(":", 1)[0] for name in methods]

    def key(indexed: tuple[int, str]) -> tuple[int, int, int]:
        index, name = indexed
        rank = registered.index(base[index]) if base[index] in registered else len(registered)
        return (0 if name == BASELINE else 1, rank, index)

    return [name for _, name in sorted(enumerate(methods), key=key)]


def _cell(mean: float | None, sd: float | None, n: int) -> str:
    if not n or mean is None:
        return "-"
    if sd is None:  # one seed has no spread to show
        return f"{mean:.1f} ({n})"
    return f"{mean:.1f} +- {sd:.1f} ({n})"


def _scores(stored: dict[str, Any]) -> dict[tuple[str, str], dict[int, float]]:
    """(method, budget) -> seed -> mIoU (%)."""
    scores: dict[tuple[str, str], dict[int, float]] = {}
    for run in runs_of(stored):
        scores.setdefault((run["method"], run["budget"]), {})[run["seed"]] = 100 * run["miou"]
    return scores


def _budgets(stored: dict[str, Any]) -> list[str]:
    from engine.sweeps import budget_order

    return budget_order(budget for by_budget in stored["results"].values() for budget in by_budget)


def score_table(stored: dict[str, Any], methods: list[str], budgets: list[str]) -> list[str]:
    """Mean, sample sd and n over seeds per method and budget: ``engine.sweeps.summarize``, as the web's
    sweep table, so the page and the sweep page compute one summary."""
    from engine.sweeps import summarize

    runs = [{"method": run["method"], "budget": run["budget"], "score": 100 * run["miou"]} for run in runs_of(stored)]
    table = summarize(runs, methods=methods, budgets=budgets)
    lines = ["| method | " + " | ".join(f"labels {b}" for b in budgets) + " |",
             "| --- | " + " | ".join("---:" for _ in budgets) + " |"]
    for row in table.rows:
        lines.append(f"| {row.method} | " + " | ".join(_cell(c.mean, c.sd, c.n) for c in row.cells) + " |")
    return lines


def gain_table(stored: dict[str, Any], methods: list[str], budgets: list[str], against: str = BASELINE) -> list[str]:
    """Each method's mean gain over ``against`` on the seeds both ran, and on how many it is above.

    ``against`` is the baseline, or ``"defaults"`` for ablations: each against its method at its
    defaults. A seed draws the labelled subset, so pairing by seed compares runs on the same labels.
    """
    scores = _scores(stored)
    rows = []
    for method in methods:
        other = method.split(":", 1)[0] if against == "defaults" else against
        if method == other:
            continue
        cells = []
        for budget in budgets:
            ours, theirs = scores.get((method, budget), {}), scores.get((other, budget), {})
            seeds = sorted(set(ours) & set(theirs))
            if not seeds:
                cells.append("-")
                continue
            gain = statistics.mean(ours[s] - theirs[s] for s in seeds)
            above = sum(ours[s] > theirs[s] for s in seeds)
            cells.append(f"{gain:+.1f} ({above} of {len(seeds)})")
        rows.append(f"| {method} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    name = "the method at its defaults" if against == "defaults" else against
    return ["", f"Difference to {name} (mIoU points, mean over the seeds both ran; in brackets: on how many "
            "of those seeds it scored higher):", "",
            "| method | " + " | ".join(f"labels {b}" for b in budgets) + " |",
            "| --- | " + " | ".join("---:" for _ in budgets) + " |", *rows]


def per_seed_table(stored: dict[str, Any], methods: list[str], budgets: list[str]) -> list[str]:
    """Each seed's mIoU where a method has several: the spread's shape (one bad seed, or two modes).

    The seed also draws the labelled subset, so a column is one labelled subset for every method.
    """
    scores = _scores(stored)
    seeds = sorted({seed for by_seed in scores.values() for seed in by_seed})
    rows = [(method, budget, scores[(method, budget)]) for method in methods for budget in budgets
            if len(scores.get((method, budget), {})) > 1]
    if not rows:
        return []
    lines = ["", "Per seed (mIoU %; the seed also draws the labelled subset):", "",
             "| method | labels | " + " | ".join(f"seed {seed}" for seed in seeds) + " |",
             "| --- | --- | " + " | ".join("---:" for _ in seeds) + " |"]
    for method, budget, by_seed in rows:
        cells = [f"{by_seed[seed]:.1f}" if seed in by_seed else "-" for seed in seeds]
        lines.append(f"| {method} | {budget} | " + " | ".join(cells) + " |")
    return lines


def per_class_table(stored: dict[str, Any], methods: list[str], budgets: list[str]) -> list[str]:
    """Mean IoU per class (over seeds) of every method and budget: where a method gains or loses."""
    runs = runs_of(stored)
    names = next((list(run["iou"]) for run in runs if run.get("iou")), None)
    if not names:
        return []
    lines = ["", "Per-class IoU (%), mean over seeds:", "", "| method | labels | " + " | ".join(names) + " |",
             "| --- | --- | " + " | ".join("---:" for _ in names) + " |"]
    for method in methods:
        for budget in budgets:
            these = [run for run in runs if run["method"] == method and run["budget"] == budget and run.get("iou")]
            if not these:
                continue
            cells = []
            for name in names:
                values = [run["iou"][name] for run in these if run["iou"].get(name) is not None]
                cells.append(f"{100 * statistics.mean(values):.1f}" if values else "-")
            lines.append(f"| {method} | {budget} | " + " | ".join(cells) + " |")
    return lines


def seconds_table(stored: dict[str, Any], methods: list[str], budgets: list[str]) -> list[str]:
    """Median wall time of a run per method and budget: what a method costs beside what it gains."""
    runs = runs_of(stored)
    lines = ["", "Wall time per run (s, median over its runs; one torch thread, so it also depends on the machine "
             "and on how many runs shared its cores):", "",
             "| method | " + " | ".join(f"labels {b}" for b in budgets) + " |",
             "| --- | " + " | ".join("---:" for _ in budgets) + " |"]
    for method in methods:
        cells = []
        for budget in budgets:
            seconds = [run["seconds"] for run in runs if run["method"] == method and run["budget"] == budget
                       and run.get("seconds") is not None]
            cells.append(f"{statistics.median(seconds):.0f}" if seconds else "-")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def setting_flags(settings: dict[str, Any]) -> list[str]:
    """bench/ssl_sweep.py's flags for ``settings`` where they differ from its defaults."""
    from bench.ssl_sweep import DEFAULT_ARCH, DEFAULT_ARCH_OPTIONS, DEFAULT_BUILTIN, DEFAULT_ITERS

    flags: list[str] = []
    if settings["data"] != f"bench/data/{DEFAULT_BUILTIN}":
        flags += ["--data", settings["data"]]
    if settings["iters"] != DEFAULT_ITERS:
        flags += ["--iters", str(settings["iters"])]
    if settings["arch"] != DEFAULT_ARCH:
        flags += ["--arch", settings["arch"]]
    if settings["arch_options"] != (DEFAULT_ARCH_OPTIONS if settings["arch"] == DEFAULT_ARCH else {}):
        flags += ["--arch-options", _json(settings["arch_options"])]
    if (settings["min_scale"], settings["max_scale"]) != (1.0, 1.0):
        flags += ["--scale", str(settings["min_scale"]), str(settings["max_scale"])]
    if settings.get("strong_blur", "crop") != "crop":
        flags += ["--blur", settings["strong_blur"]]
    if settings.get("device", "cpu") != "cpu":
        flags += ["--device", settings["device"]]
    elif (kernels := settings.get("cpu_kernels") or "native") != "avx2":
        flags += ["--kernels", kernels]
    return flags


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def commands(stored: dict[str, Any], methods: list[str], budgets: list[str], results: str) -> list[str]:
    """Sweep commands that train exactly the runs of ``methods`` in the file.

    Methods that ran the same seeds at the same budgets share a command. A rerun skips the runs
    its results file already holds, so against an empty ``--results`` it retrains them all.
    """
    scores = _scores(stored)
    methods_of: dict[tuple[str, tuple[int, ...]], list[str]] = {}
    for method in methods:
        for budget in budgets:
            if seeds := tuple(sorted(scores.get((method, budget), {}))):
                methods_of.setdefault((budget, seeds), []).append(method)
    # Budgets whose methods and seeds agree share one command (16 and 1/16 when both ran alike).
    budgets_of: dict[tuple[tuple[str, ...], tuple[int, ...]], list[str]] = {}
    for (budget, seeds), names in methods_of.items():
        budgets_of.setdefault((tuple(names), seeds), []).append(budget)
    flags = setting_flags(stored["settings"]) + _results_flag(results).split()
    return ["PYTHONPATH=. python bench/ssl_sweep.py " + shlex.join([*flags, "--budgets", *budget_names,
                                                                   "--seeds", *map(str, seeds), "--methods", *names])
            for (names, seeds), budget_names in budgets_of.items()]


def _results_flag(results: str) -> str:
    return "" if results == RESULTS else f" --results {shlex.quote(results)}"


def machines(stored: dict[str, Any]) -> list[str]:
    counts = Counter(run.get("machine") or "not recorded" for run in runs_of(stored))
    return [f"- {machine}: {n} run{'s' if n > 1 else ''}" for machine, n in counts.items()]


def markdown_table(stored: dict[str, Any], results: str = RESULTS) -> str:
    """The generated part of the page: everything above ``NOTES_MARKER``."""
    settings = stored["settings"]
    budgets = _budgets(stored)
    ordered = _method_order(list(stored["results"]))
    reference = [m for m in ordered if ":" not in m]
    ablations = [m for m in ordered if ":" in m]
    kernels = f" ({settings['cpu_kernels']} kernels)" if settings.get("cpu_kernels") else ""
    lines = [
        "# Semi-supervised results", "",
        f"Final validation mIoU (%) on `{settings['data']}`, {settings['arch']} {settings['arch_options']}, "
        f"{settings['iters']} iterations on {settings.get('device', 'cpu')}{kernels}, random rescaling "
        f"{settings['min_scale']}-{settings['max_scale']}, strong-view blur `{settings.get('strong_blur', 'pixels')}`, "
        "as mean +- sample standard deviation over seeds (number of seeds).",
        "Every method runs at its documented defaults (docs/methods.md); rows that name options "
        "(`method:option=value`) are the ablations below.",
        f"Generated from `{results}` by `PYTHONPATH=. python bench/ssl_sweep.py --page{_results_flag(results)}`; "
        "edit only the findings.", "",
        *score_table(stored, reference, budgets),
        *gain_table(stored, reference, budgets),
        "", "Reproduced by (a rerun skips the runs the results file already holds):", "",
        "```", *commands(stored, reference, budgets, results), "```",
        *per_seed_table(stored, reference, budgets),
        *per_class_table(stored, reference, budgets),
        *seconds_table(stored, reference, budgets),
    ]
    if ablations:
        lines += ["", "## Ablations", "",
                  "One option changed from the method's defaults; compare with the method's row above.", "",
                  *score_table(stored, ablations, budgets), *gain_table(stored, ablations, budgets, "defaults"),
                  *per_seed_table(stored, ablations, budgets), *per_class_table(stored, ablations, budgets),
                  "", "Reproduced by:", "", "```", *commands(stored, ablations, budgets, results), "```"]
    lines += ["", "Runs by machine (the same seed and code can end a few points apart on other hardware; "
              "bench/kernels.py):", "", *machines(stored)]
    return "\n".join(lines) + "\n"


def render(stored: dict[str, Any], notes: str, results: str = RESULTS) -> str:
    return markdown_table(stored, results) + ("\n" + NOTES_MARKER + notes if notes else "")


def notes_of(page: Path) -> str:
    """The hand-written findings below the marker of an existing page (empty if none)."""
    if page.exists() and NOTES_MARKER in (text := page.read_text()):
        return text.split(NOTES_MARKER, 1)[1]
    return ""


def write_page(page: Path, stored: dict[str, Any], results: str = RESULTS) -> None:
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render(stored, notes_of(page), results))
