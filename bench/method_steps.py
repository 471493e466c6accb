"""Cost of one training step of every method on the CPU: loading the batches vs computing the step.

The semi-supervised sweep (``bench/ssl_sweep.py``) is bounded by these numbers, so they
say where to optimise: when "data ms" is a small share of "step ms", the data pipeline is
not the bottleneck and only faster maths helps. The runs are built and stepped by the
trainer's own functions, so what is timed is exactly what a training run does.

    PYTHONPATH=. python bench/method_steps.py --steps 10 --json bench/out/method_steps.json

Settings are the sweep's (``ssl_sweep.RUN_SETTINGS``: 64x64 crops, 8 labelled + 8
unlabelled images, UNet w16 with a stride-2 stem, AdamW), one torch thread.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from bench.ssl_sweep import DEFAULT_ARCH, DEFAULT_ARCH_OPTIONS, RUN_SETTINGS, resolve_data
from engine import trainer
from engine.config import RunConfig
from engine.methods import METHODS

WARMUP_STEPS = 2


def measure(data: Path, method: str, steps: int) -> dict:
    config = RunConfig.from_flat({**RUN_SETTINGS, "data": str(data), "arch": DEFAULT_ARCH,
                                  "model_options": DEFAULT_ARCH_OPTIONS, "method": method, "labeled": "16", "seed": 0,
                                  "iters": steps + WARMUP_STEPS, "min_scale": 1, "max_scale": 1})
    run = trainer._build_run(config, None)  # the trainer's own construction and step, not a re-implementation
    batches = trainer._batches(run)
    run.method.train()
    data_ms, step_ms = [], []
    for i in range(steps + WARMUP_STEPS):
        start = time.perf_counter()
        labeled, unlabeled = next(batches)
        loaded = time.perf_counter()
        trainer._train_one_step(run, labeled, unlabeled)
        run.step += 1
        if i >= WARMUP_STEPS:
            data_ms.append(1000 * (loaded - start))
            step_ms.append(1000 * (time.perf_counter() - loaded))
    return {"method": method, "data_ms": statistics.median(data_ms), "step_ms": statistics.median(step_ms)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=METHODS.names())
    parser.add_argument("--steps", type=int, default=10, help="Timed steps per method, after 2 warm-up steps.")
    parser.add_argument("--builtin", default="fashion-scenes")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = resolve_data(args)
    rows = [measure(data, method, args.steps) for method in args.methods]
    baseline = next((row["step_ms"] for row in rows if row["method"] == "supervised"), None)
    print("| method | data ms | step ms | x supervised step |")
    print("| --- | ---: | ---: | ---: |")
    for row in rows:
        ratio = f"{row['step_ms'] / baseline:.1f}" if baseline else "-"
        print(f"| {row['method']} | {row['data_ms']:.0f} | {row['step_ms']:.0f} | {ratio} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                                         "load_average": os.getloadavg(), "torch": torch.__version__,
                                         "steps": args.steps, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
