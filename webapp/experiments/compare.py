"""The compare page's data: which runs, their per-class IoU side by side, the evaluation steps whose
prediction samples every run stored, and the mIoU-versus-speed Pareto front.

Experiment trackers overlay curves but cannot show the same validation mask from several runs at
one step (mlflow#22324, aim#3230, clearml#1150 ask for it); this page does, over the steps every
compared run evaluated. Runs of several datasets may be compared: per-class rows are aligned by
class name, and the page says when the class names differ.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.http import Http404

from webapp.experiments.models import Evaluation, Experiment
from webapp.sweeps.models import Sweep
from webapp.teams.access import get_for_user, visible

#: Most runs one page compares: beyond a dozen, columns and legends stop being readable.
MAX_RUNS = 12
#: Most validation samples shown per step (one row each).
MAX_SAMPLE_ROWS = 8


class CompareError(ValueError):
    """What was asked cannot be compared; the message says why, in the user's words (a 400)."""


def parse_ids(values: Iterable[str]) -> list[int]:
    """``ids`` as the list's form sends it (``ids=1&ids=2``) or as a link writes it (``ids=1,2``),
    in the order given, each run once."""
    parts = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not parts:
        raise CompareError("ids: pick the runs to compare (ids=1,2,3) or open a sweep's comparison (sweep=<id>)")
    bad = [part for part in parts if not part.isdigit() or len(part) > 10]
    if bad:
        raise CompareError(f"ids: expected run ids (whole numbers) separated by commas, got {bad[0][:40]!r}")
    ids = list(dict.fromkeys(int(part) for part in parts))
    if len(ids) > MAX_RUNS:
        raise CompareError(f"ids: at most {MAX_RUNS} runs can be compared at once, got {len(ids)}")
    return ids


def runs_by_ids(user, ids: list[int]) -> list[Experiment]:
    """The runs in the order given; one that is not there or belongs to another team is a 404."""
    found = {run.pk: run for run in visible(Experiment.objects.select_related("dataset"), user).filter(pk__in=ids)}
    if len(found) != len(ids):
        raise Http404("No such experiment")
    return [found[pk] for pk in ids]


def sweep_of(user, raw: str) -> Sweep:
    if not raw.isdigit() or len(raw) > 10:
        raise CompareError(f"sweep: expected a sweep id (a whole number), got {raw[:40]!r}")
    return get_for_user(Sweep.objects.select_related("dataset"), user, int(raw))


def sweep_runs_to_compare(sweep: Sweep) -> tuple[list[Experiment], int]:
    """A sweep's runs, or its ``MAX_RUNS`` best by final mIoU when it has more; and how many it has."""
    runs = list(sweep.experiments.select_related("dataset").order_by("pk"))
    if len(runs) <= MAX_RUNS:
        return runs, len(runs)
    best = sorted(runs, key=lambda run: (run.final_miou is None, -(run.final_miou or 0.0), run.pk))[:MAX_RUNS]
    return sorted(best, key=lambda run: run.pk), len(runs)


def last_evaluations(runs: list[Experiment]) -> dict[int, Evaluation]:
    """Each run's latest evaluation (runs without one are left out)."""
    latest: dict[int, Evaluation] = {}
    for evaluation in Evaluation.objects.filter(experiment__in=runs).defer("confusion_matrix", "predictions"):
        if evaluation.step >= getattr(latest.get(evaluation.experiment_id), "step", -1):
            latest[evaluation.experiment_id] = evaluation
    return latest


def final_score(run: Experiment, last: Evaluation | None) -> float | None:
    """The run's final mIoU, or its last evaluation's while it still trains."""
    return run.final_miou if run.final_miou is not None else getattr(last, "miou", None)


def final_throughput(run: Experiment, last: Evaluation | None) -> float | None:
    """Inference images/s measured at the end of the run (``Experiment.throughput``)."""
    return run.throughput if run.throughput is not None else getattr(last, "throughput", None)


@dataclass
class Row:
    """One row of the per-class table: a label, one value per run (None: absent), the best columns."""

    label: str
    values: list[float | None]
    best: set[int] = field(default_factory=set)
    in_percent: bool = True  # scores as every page shows them (0.812 -> 81.2); else as they are (images/s)

    @property
    def cells(self) -> list[tuple[str | None, bool]]:
        """(the value as shown, None when absent; whether it is the row's best) per run."""
        def shown(value):
            return None if value is None else f"{100 * value if self.in_percent else value:.1f}"

        return [(shown(value), index in self.best) for index, value in enumerate(self.values)]


def best_columns(values: list[float | None]) -> set[int]:
    """The columns holding the highest value (every one of them on a tie); none when all are absent."""
    present = [value for value in values if value is not None]
    if not present:
        return set()
    top = max(present)
    return {index for index, value in enumerate(values) if value == top}


def _row(label: str, values: list[float | None], in_percent: bool = True) -> Row:
    return Row(label, values, best_columns(values), in_percent)


@dataclass
class ClassTable:
    rows: list[Row]  # one per class name, in order of first appearance
    summary: list[Row]  # mIoU and throughput
    class_names_differ: bool


def class_table(runs: list[Experiment], last: dict[int, Evaluation]) -> ClassTable:
    """Per-class IoU at each run's last evaluation, aligned by class name, plus mIoU and throughput."""
    names_of = {run.pk: list(last[run.pk].class_names) if run.pk in last else [] for run in runs}
    order = list(dict.fromkeys(name for run in runs for name in names_of[run.pk]))
    iou_of = {run.pk: dict(zip(names_of[run.pk], last[run.pk].iou, strict=True)) if run.pk in last else {}
              for run in runs}
    rows = [_row(name, [iou_of[run.pk].get(name) for run in runs]) for name in order]
    summary = [_row("mIoU", [final_score(run, last.get(run.pk)) for run in runs]),
               _row("throughput (images/s)", [final_throughput(run, last.get(run.pk)) for run in runs],
                    in_percent=False)]
    evaluated = [names_of[run.pk] for run in runs if run.pk in last]
    return ClassTable(rows, summary, any(names != evaluated[0] for names in evaluated))


@dataclass(frozen=True)
class SpeedPoint:
    run_id: int
    throughput: float  # images/s
    miou: float


def pareto_front(points: list[SpeedPoint]) -> list[SpeedPoint]:
    """The points no other point dominates, fastest last: a point is dominated when another is at
    least as fast and at least as accurate, and strictly better in one of the two. Equal points
    dominate neither other, so both stay on the front; of two equally fast runs only the more
    accurate one does. Sorted by throughput (then mIoU) so the front connects left to right.
    """
    def dominates(a: SpeedPoint, b: SpeedPoint) -> bool:
        return (a.throughput >= b.throughput and a.miou >= b.miou
                and (a.throughput > b.throughput or a.miou > b.miou))

    front = [point for point in points if not any(dominates(other, point) for other in points)]
    return sorted(front, key=lambda point: (point.throughput, point.miou, point.run_id))


def speed_points(runs: list[Experiment], last: dict[int, Evaluation]) -> list[SpeedPoint]:
    """Runs with both a throughput and a final mIoU; the rest cannot be placed on the scatter."""
    points = []
    for run in runs:
        throughput, miou = final_throughput(run, last.get(run.pk)), final_score(run, last.get(run.pk))
        if throughput is not None and miou is not None:
            points.append(SpeedPoint(run.pk, throughput, miou))
    return points


def common_samples(runs: list[Experiment]) -> list[dict]:
    """The evaluation steps at which every run stored prediction masks of the same validation
    images, each with those images' ids (in the first run's order, at most ``MAX_SAMPLE_ROWS``).

    Only runs of one dataset share validation images; several datasets give no steps.
    """
    if not runs or len({run.dataset_id for run in runs}) > 1:
        return []
    stored: dict[int, dict[int, list[str]]] = {run.pk: {} for run in runs}
    for run_id, step, predictions in Evaluation.objects.filter(experiment__in=runs).values_list(
            "experiment_id", "step", "predictions"):
        stored[run_id][step] = [sample["id"] for sample in predictions if sample.get("prediction")]
    steps = sorted(set.intersection(*(set(by_step) for by_step in stored.values())))
    first = runs[0].pk
    common = []
    for step in steps:
        shared = set.intersection(*(set(by_step[step]) for by_step in stored.values()))
        ids = [sample_id for sample_id in stored[first][step] if sample_id in shared][:MAX_SAMPLE_ROWS]
        if ids:
            common.append({"step": step, "ids": ids})
    return common
