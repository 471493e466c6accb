"""Every method's logged values, step by step, for a fixed seed: the check that a speed change computes the same.

Speed work on a method's step (issue 22: no host-device synchronisation, shared forwards,
tensor ops instead of loops) must not change what the step computes. This script trains
each method for a few steps with the sweep's settings (``ssl_sweep.run_config``, one
torch thread, a short run so that staged methods reach every stage: ST++'s student starts
at 40% of the run) and logs every step's losses and diagnostics. Run it before a change
with ``--json``, after it with ``--compare``: it prints the largest difference per method
and fails when one exceeds ``--tolerance`` or a value appears or disappears.

    PYTHONPATH=. python bench/method_losses.py --json bench/out/losses-before.json
    PYTHONPATH=. python bench/method_losses.py --compare bench/out/losses-before.json
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from bench.method_trace import Trace
from bench.ssl_sweep import DEFAULT_ARCH, DEFAULT_ARCH_OPTIONS, resolve_data, run_config
from engine.methods import METHODS
from engine.trainer import train

#: Variants whose code paths the defaults do not take (threshold modes, partners, soft targets, plain CPS).
VARIANTS = (
    "fixmatch:threshold_mode=distribution", "fixmatch:threshold_mode=alignment", "unimatch:threshold_mode=debias",
    "unimatch:partner=labeled,target=soft,box_area=0.5", "unimatch:teacher_ema=0.99,joint_bn=false",
    "cps:cutmix=false", "cct:vat=1", "cutmix:consistency_loss=ce",
)


class FullTrace(Trace):
    """``Trace`` without its rounding to 5 decimals: differences of fp rounding must show."""

    def log_metrics(self, step, metrics) -> None:
        self.step = step
        self.metrics.append({"step": step, **{k: float(v) for k, v in metrics.items()}})


def trace(data: str, method: str, iters: int, steps: int) -> list[dict[str, float]]:
    config = run_config(data, DEFAULT_ARCH, DEFAULT_ARCH_OPTIONS, method, "16", 0, iters, log_every=1,
                        eval_every=10 * iters)  # no evaluation: only the steps are compared
    recorder = FullTrace(stop_at=steps)
    train(config, recorder)
    return recorder.metrics


def compare(before: list[dict], after: list[dict]) -> tuple[float, int | None]:
    """Largest absolute difference over every step and value (infinite when the logged names differ),
    and the first step where any value differs at all."""
    if [sorted(row) for row in before] != [sorted(row) for row in after]:
        return math.inf, None
    differences = [max((abs(a[k] - b[k]) for k in a if k != "lr"), default=0.0)
                   for a, b in zip(before, after, strict=True)]
    first = next((row["step"] for row, difference in zip(before, differences, strict=True) if difference), None)
    return max(differences, default=0.0), first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=[*METHODS.names(), *VARIANTS])
    parser.add_argument("--iters", type=int, default=12, help="Length of the run the schedules are set for.")
    parser.add_argument("--steps", type=int, default=8, help="Steps logged (the run stops there).")
    parser.add_argument("--builtin", default="fashion-scenes")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--json", type=Path, help="Write the values here.")
    parser.add_argument("--compare", type=Path, help="Compare with values written before by --json.")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = str(resolve_data(args))
    traces = {method: trace(data, method, args.iters, args.steps) for method in args.methods}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"iters": args.iters, "steps": args.steps, "traces": traces}, indent=1) + "\n")
    if not args.compare:
        return 0
    before = json.loads(args.compare.read_text())["traces"]
    print("| method | steps | largest difference | first step that differs |")
    print("| --- | ---: | ---: | ---: |")
    failed = False
    for method, rows in traces.items():
        difference, first = compare(before[method], rows) if method in before else (math.inf, None)
        failed |= difference > args.tolerance
        print(f"| {method} | {len(rows)} | {difference:.3g} | {first or '-'} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
