"""Cost of one training step of every method on the CPU: loading the batches vs computing the step.

The semi-supervised sweep (``bench/ssl_sweep.py``) is bounded by these numbers, so they
say where to optimise: when "data ms" is a small share of "step ms", the data pipeline is
not the bottleneck and only faster maths helps. The runs are built and stepped by the
trainer's own functions, so what is timed is exactly what a training run does.

    PYTHONPATH=. python bench/method_steps.py --steps 10 --json bench/out/method_steps.json
    PYTHONPATH=. python bench/method_steps.py --profile --methods unimatch cct

``--profile`` runs one step per method under ``torch.profiler`` instead and prints, per
method, the passes of each network (its encoder's forward calls; the discriminator's and
auxiliary decoders' own), the host reads of a tensor's value (``aten::_local_scalar_dense``:
``.item()``, ``float()``, ``bool()``, ``.tolist()``; on a GPU each one waits for the device)
and data-dependent shapes (``aten::nonzero``: boolean indexing) inside the method's own code
(``training_step`` and ``after_optimizer_step``; the optimiser's reads of its CPU step counters
are left out), then the ops with the most self time. Issue 22 asks for a step without
host-device synchronisation: the two counts say where one is left. Draws of a CPU random
number (``box_masks``) count as reads too, though on a GPU they wait for nothing.

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
from collections.abc import Iterator
from pathlib import Path

import torch

from bench.ssl_sweep import DEFAULT_ARCH, DEFAULT_ARCH_OPTIONS, RUN_SETTINGS, resolve_data
from engine import trainer
from engine.config import RunConfig
from engine.methods import METHODS

WARMUP_STEPS = 2
#: Ops that read a tensor's value on the host (a device sync on a GPU) or give it a data-dependent shape.
HOST_READS, DATA_DEPENDENT = "aten::_local_scalar_dense", "aten::nonzero"
TOP_OPS = 8
METHOD_RANGE = "method step"


def build(data: Path, method: str, iters: int, device: str = "cpu") -> tuple[trainer.Run, Iterator]:
    config = RunConfig.from_flat({**RUN_SETTINGS, "data": str(data), "arch": DEFAULT_ARCH,
                                  "model_options": DEFAULT_ARCH_OPTIONS, "method": method, "labeled": "16", "seed": 0,
                                  "iters": iters, "min_scale": 1, "max_scale": 1, "device": device})
    run = trainer._build_run(config, None)  # the trainer's own construction and step, not a re-implementation
    run.method.train()
    return run, trainer._batches(run)


def measure(data: Path, method: str, steps: int, device: str = "cpu") -> dict:
    run, batches = build(data, method, steps + WARMUP_STEPS, device)
    data_ms, step_ms, step_cpu_ms = [], [], []
    for i in range(steps + WARMUP_STEPS):
        start = time.perf_counter()
        labeled, unlabeled = next(batches)
        loaded, loaded_cpu = time.perf_counter(), time.process_time()
        trainer._train_one_step(run, labeled, unlabeled)
        run.step += 1
        if i >= WARMUP_STEPS:
            data_ms.append(1000 * (loaded - start))
            step_ms.append(1000 * (time.perf_counter() - loaded))
            step_cpu_ms.append(1000 * (time.process_time() - loaded_cpu))
    # CPU time counts only this process's work: on a shared machine it moves less with the load than the wall time.
    return {"method": method, "data_ms": statistics.median(data_ms), "step_ms": statistics.median(step_ms),
            "step_cpu_ms": statistics.median(step_cpu_ms)}


def count_passes(method: torch.nn.Module) -> tuple[dict[str, int], list]:
    """Forward-call counters of each network the method owns: its encoder where it has one (CCT calls
    the encoder and decoders directly), else the module itself; lists (auxiliary decoders, ST++'s
    checkpoints) count all their members under one name."""
    counts: dict[str, int] = {}
    handles = []
    for name, child in method.named_children():
        members = list(child) if isinstance(child, torch.nn.ModuleList) else [child]
        for member in members:
            if not any(True for _ in member.parameters()):
                continue
            counts.setdefault(name, 0)
            target = getattr(member, "encoder", member)

            def hook(module, args, output, name=name):
                counts[name] += 1

            handles.append(target.register_forward_hook(hook))
    return counts, handles


def labelled(function, label: str):
    """``function`` inside a profiler range named ``label``."""
    def call(*args, **kwargs):
        with torch.profiler.record_function(label):
            return function(*args, **kwargs)

    return call


def inside(event, label: str) -> bool:
    while event is not None:
        if event.name == label:
            return True
        event = event.cpu_parent
    return False


def profile(data: Path, method: str, device: str = "cpu") -> dict:
    """One step after the warm-up, under the profiler: network passes, host reads and the top ops."""
    run, batches = build(data, method, WARMUP_STEPS + 1, device)
    for _ in range(WARMUP_STEPS):
        trainer._train_one_step(run, *next(batches))
        run.step += 1
    labeled, unlabeled = next(batches)
    counts, handles = count_passes(run.method)
    run.training_step = labelled(run.training_step, METHOD_RANGE)
    run.method.after_optimizer_step = labelled(  # type: ignore[method-assign]
        run.method.after_optimizer_step, METHOD_RANGE)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if run.device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profiler:
        trainer._train_one_step(run, labeled, unlabeled)
    for handle in handles:
        handle.remove()
    in_method = [event.name for event in profiler.events() if inside(event, METHOD_RANGE)]
    events = profiler.key_averages()
    top = sorted(events, key=lambda event: event.self_cpu_time_total, reverse=True)[:TOP_OPS]
    everywhere = [event.name for event in profiler.events()]
    return {"method": method, "passes": counts, "host_reads": in_method.count(HOST_READS),
            "host_reads_in_step": everywhere.count(HOST_READS),
            "data_dependent": in_method.count(DATA_DEPENDENT),
            "top_ops": [{"op": e.key, "calls": e.count, "self_cpu_ms": e.self_cpu_time_total / 1000} for e in top]}


def print_profiles(rows: list[dict]) -> None:
    print("| method | passes per step | host reads (method) | nonzero (method) | host reads (whole step) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for row in rows:
        passes = ", ".join(f"{name} {count}" for name, count in row["passes"].items())
        print(f"| {row['method']} | {passes} | {row['host_reads']} | {row['data_dependent']} | "
              f"{row['host_reads_in_step']} |")
    for row in rows:
        ops = ", ".join(f"{op['op']} {op['self_cpu_ms']:.1f} ms ({op['calls']})" for op in row["top_ops"])
        print(f"{row['method']}: {ops}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=METHODS.names())
    parser.add_argument("--steps", type=int, default=10, help="Timed steps per method, after 2 warm-up steps.")
    parser.add_argument("--builtin", default="fashion-scenes")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--profile", action="store_true", help="Profile one step per method instead of timing.")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = resolve_data(args)
    if args.profile:
        profiles = [profile(data, method, args.device) for method in args.methods]
        print_profiles(profiles)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"torch": torch.__version__, "device": args.device,
                                             "profiles": profiles}, indent=2) + "\n")
        return 0
    rows = [measure(data, method, args.steps, args.device) for method in args.methods]
    baseline = next((row["step_ms"] for row in rows if row["method"] == "supervised"), None)
    print("| method | data ms | step ms | step CPU ms | x supervised step |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        ratio = f"{row['step_ms'] / baseline:.1f}" if baseline else "-"
        print(f"| {row['method']} | {row['data_ms']:.0f} | {row['step_ms']:.0f} | {row['step_cpu_ms']:.0f} | {ratio} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                                         "load_average": os.getloadavg(), "torch": torch.__version__,
                                         "steps": args.steps, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
