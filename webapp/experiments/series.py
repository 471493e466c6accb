"""Metric series for pages and clients: incremental, downsampled, or every point as CSV.

Downsampling keeps the shape of a curve: the steps ``from_step..to_step`` are cut into
``max_points / 2`` equal buckets and each bucket gives its lowest and its highest point
(at the steps where they occur), so a spike or a collapse survives at any zoom; plain
striding would hide it. On PostgreSQL a wide view reads the block summaries the metric
writer keeps (each block's lowest and highest point; a block's extreme is always kept, so
a spike survives) and a narrow one aggregates the points in one query (``min``/``max``
over ``ARRAY[value, step]`` pairs), so a million stored points never travel to Python. Values
that JSON cannot carry (NaN, infinities: a diverged loss) are given as null.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator

from django.db import connection
from django.db.models import Max

from webapp.experiments.models import MetricPoint, MetricSummary

#: Output buckets at least this many steps wide are read from block summaries.
SUMMARY_MIN_SPAN = 4 * MetricSummary.BLOCK_STEPS  # 512 steps

Series = dict[str, dict[str, list]]


def json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def to_series(rows: Iterable[tuple[str, int, float]]) -> Series:
    """(name, step, value) rows, in step order -> {name: {"steps": [...], "values": [...]}}."""
    series: Series = {}
    for name, step, value in rows:
        entry = series.setdefault(name, {"steps": [], "values": []})
        entry["steps"].append(step)
        entry["values"].append(json_number(value))
    return series


def downsampled(experiment_id: int, names: list[str], from_step: int, to_step: int | None, max_points: int) -> Series:
    """At most ``max_points`` points per name between two steps (inclusive; ``to_step`` None:
    the last stored), extremes kept."""
    if to_step is None:
        points = MetricPoint.objects.filter(experiment_id=experiment_id, step__gte=from_step)
        if names:
            points = points.filter(name__in=names)
        to_step = points.aggregate(last=Max("step"))["last"]
        if to_step is None:
            return {}
    buckets = max(1, max_points // 2)
    width = max(1, to_step - from_step + 1)
    if connection.vendor == "postgresql" and width // buckets >= SUMMARY_MIN_SPAN:
        rows = _summary_extremes(experiment_id, names, from_step, to_step, buckets, width)
    elif connection.vendor == "postgresql":
        rows = _postgres_extremes(experiment_id, names, from_step, to_step, buckets, width)
    else:
        rows = _python_extremes(experiment_id, names, from_step, to_step, buckets, width)
    points: dict[str, set[tuple[int, float]]] = defaultdict(set)
    for name, low_value, low_step, high_value, high_step in rows:
        points[name].add((int(low_step), low_value))
        points[name].add((int(high_step), high_value))
    return to_series((name, step, value) for name in sorted(points) for step, value in sorted(points[name]))


def _postgres_extremes(experiment_id, names, from_step, to_step, buckets, width):
    table = MetricPoint._meta.db_table
    name_filter = "AND name = ANY(%s)" if names else ""
    params = [experiment_id, from_step, to_step] + ([names] if names else []) + [from_step, buckets, width]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT name, min(ARRAY[value, step::double precision]), max(ARRAY[value, step::double precision]) "
            f"FROM {table} WHERE experiment_id = %s AND step BETWEEN %s AND %s {name_filter} "
            "GROUP BY name, ((step - %s)::bigint * %s) / %s", params)
        return [(name, low[0], low[1], high[0], high[1]) for name, low, high in cursor.fetchall()]


def _summary_extremes(experiment_id, names, from_step, to_step, buckets, width):
    """Bucket extremes from the block summaries (whole blocks inside the range) and the points
    of the two partial blocks at its ends: a few thousand rows for any length of run."""
    block = MetricSummary.BLOCK_STEPS
    first_block, last_block = -(-from_step // block), (to_step + 1) // block - 1
    summaries = MetricSummary.objects.filter(experiment_id=experiment_id, block__gte=first_block, block__lte=last_block)
    points = MetricPoint.objects.filter(experiment_id=experiment_id, step__gte=from_step, step__lte=to_step).exclude(
        step__gte=first_block * block, step__lte=(last_block + 1) * block - 1)
    if names:
        summaries, points = summaries.filter(name__in=names), points.filter(name__in=names)

    def candidates():
        for name, low_value, low_step, high_value, high_step in summaries.values_list(
                "name", "low_value", "low_step", "high_value", "high_step"):
            yield name, low_step, low_value
            yield name, high_step, high_value
        yield from points.values_list("name", "step", "value")

    return _bucket_extremes(candidates(), from_step, buckets, width)


def _python_extremes(experiment_id, names, from_step, to_step, buckets, width):
    points = MetricPoint.objects.filter(experiment_id=experiment_id, step__gte=from_step, step__lte=to_step)
    if names:
        points = points.filter(name__in=names)
    return _bucket_extremes(points.values_list("name", "step", "value").iterator(chunk_size=10_000), from_step,
                            buckets, width)


def _bucket_extremes(points: Iterable[tuple[str, int, float]], from_step: int, buckets: int, width: int):
    """(name, step, value) points -> (name, low value, its step, high value, its step) per bucket."""
    extremes: dict[tuple[str, int], list] = {}
    for name, step, value in points:
        key = (name, (step - from_step) * buckets // width)
        low_high = extremes.setdefault(key, [value, step, value, step])
        if value < low_high[0]:
            low_high[0:2] = [value, step]
        if value > low_high[2]:
            low_high[2:4] = [value, step]
    return [(name, *values) for (name, _), values in extremes.items()]


def csv_rows(experiment_id: int, names: list[str]) -> Iterator[str]:
    """Every point as CSV lines (a header first), read from the database in chunks."""
    yield "name,step,value\n"
    points = MetricPoint.objects.filter(experiment_id=experiment_id).order_by("name", "step")
    if names:
        points = points.filter(name__in=names)
    for name, step, value in points.values_list("name", "step", "value").iterator(chunk_size=20_000):
        quoted = '"' + name.replace('"', '""') + '"' if any(c in name for c in ',"\n') else name
        yield f"{quoted},{step},{value!r}\n"
