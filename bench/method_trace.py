"""Trace one sweep run: every logged loss and diagnostic, step by step, to see *why* a method helps or not.

The sweep (``bench/ssl_sweep.py``) keeps only the validation mIoU at thirds of a run. When
a method ends at or below the supervised baseline, the question is what its unlabelled
signal did: how many pixels it trusted (``pseudo_label_coverage``), how right they were
(``pseudo_label_accuracy``), how large each loss term was. This script trains the same run
as the sweep (its ``run_config``: same settings, same seed, so the same steps) and prints those curves.
``--stop-at`` ends it early: the steps up to there are exactly the full run's, because the
schedules are set by ``--iters``, not by where the trace stops (logging more often does not
change the steps either). It runs on the sweep's CPU kernels (``--kernels``, bench/kernels.py);
torch and the engine pick them when imported, so start it with ``ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2 SEGLAB_RESIZE_GRADIENT=pytorch`` (it refuses to trace on other kernels).

    PYTHONPATH=. python bench/method_trace.py adversarial --seed 0 --stop-at 1500 \
        --json bench/out/trace-adversarial.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.kernels import CPU_KERNELS, DEFAULT_KERNELS, check
from bench.ssl_sweep import DEFAULT_ARCH, DEFAULT_ARCH_OPTIONS, run_config
from engine.reporting import NullReporter
from engine.trainer import train

DEFAULT_COLUMNS = ("loss", "pseudo_label_coverage", "pseudo_label_accuracy")


class Trace(NullReporter):
    """Keeps every logged row and evaluation; stops at the first logged step at or past ``stop_at``."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.stop_at, self.step = stop_at, 0
        self.metrics: list[dict[str, float]] = []
        self.evaluations: list[dict[str, Any]] = []

    def log_metrics(self, step, metrics) -> None:
        self.step = step
        self.metrics.append({"step": step, **{k: round(float(v), 5) for k, v in metrics.items()}})

    def log_evaluation(self, step, result) -> None:
        """Per-class IoU and the confusion matrix too: a method that loses one class (trousers, say)
        shows here which class took its pixels."""
        iou = {name: None if value is None else round(value, 4)
               for name, value in zip(result.class_names, result.iou, strict=True)}
        self.evaluations.append({"step": step, "miou": round(result.miou, 4), "iou": iou,
                                 "confusion_matrix": result.confusion_matrix})
        classes = ", ".join(f"{name} {percent(value)}" for name, value in iou.items())
        print(f"step {step}: val mIoU {100 * result.miou:.1f} ({classes})", flush=True)

    def should_stop(self) -> bool:
        return self.stop_at is not None and self.step >= self.stop_at


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def table(rows: list[dict[str, float]], columns: list[str]) -> str:
    lines = ["| step | " + " | ".join(columns) + " |", "| ---: |" + " ---: |" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.4g}" if c in row else "-" for c in columns]
        lines.append(f"| {row['step']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("method", help="NAME or NAME:OPTION=VALUE[,OPTION=VALUE], as in the sweep.")
    parser.add_argument("--data", type=Path, default=Path("bench/data/fashion-scenes"))
    parser.add_argument("--budget", default="16")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iters", type=int, default=3000, help="Length of the run the schedules are set for.")
    parser.add_argument("--stop-at", type=int, help="End the trace at this step, rounded up to a multiple of --every "
                        "(default: the whole run).")
    parser.add_argument("--every", type=int, default=100, help="Log the means of every N steps (default: 100).")
    parser.add_argument("--columns", nargs="+", default=list(DEFAULT_COLUMNS), help="Metrics printed in the table.")
    parser.add_argument("--blur", default="crop")
    parser.add_argument("--kernels", choices=CPU_KERNELS, default=DEFAULT_KERNELS,
                        help="The CPU kernels of the sweep run it retraces (default: avx2).")
    parser.add_argument("--json", type=Path, help="Write the whole trace (every logged metric) here.")
    args = parser.parse_args(argv)
    if not args.data.exists():
        parser.error(f"{args.data} does not exist: run bench/ssl_sweep.py once, it generates the dataset")

    try:
        check(args.kernels)
    except RuntimeError as error:
        parser.error(str(error))
    torch.set_num_threads(1)
    config = run_config(str(args.data), DEFAULT_ARCH, DEFAULT_ARCH_OPTIONS, args.method, args.budget, args.seed,
                        args.iters, blur=args.blur, log_every=args.every)
    trace = Trace(args.stop_at)
    start = time.perf_counter()
    train(config, trace)
    print(table(trace.metrics, args.columns))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"method": args.method, "budget": args.budget, "seed": args.seed,
                                         "iters": args.iters, "seconds": round(time.perf_counter() - start, 1),
                                         "metrics": trace.metrics, "evaluations": trace.evaluations}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
