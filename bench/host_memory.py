"""Host memory kept for reuse (``engine.host_memory``) against glibc's defaults: step time and page faults.

``PYTHONPATH=. python bench/host_memory.py [--archs ...] [--size HxW] [--batch N] [--runs N]
[--rounds N] [--threads N] [--json PATH]`` measures each architecture in fresh processes, one
per setting (``SEGLAB_HOST_MEMORY=system``, then ``retain``), alternated over ``--rounds``
rounds so that a shared machine's load falls on both alike. The allocator is a property of
the process, which is why the two cannot share one, as the other benches' interleaved steps do.

Each process builds the network as a run does (its declared memory format), then times
``--runs`` training steps (forward, cross-entropy with the auxiliary head at 0.4, backward, SGD
step) and ``--runs`` inference steps (the engine's BatchNorm-folded network, no grad) after
two warm-up steps of each, counting minor page faults (``getrusage``) around every step.

* train ms / infer ms: median over all rounds' steps.
* faults: median minor page faults per step.
* peak MB: the process's peak resident size (``ru_maxrss``), median over rounds.
* ratio: retain / system step time; below 1, keeping freed memory is faster.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench.architectures import arch_names, parse_size, table_header, table_row, write_results
from bench.memory_format import inference_step, training_step
from engine.evaluation import inference_network
from engine.host_memory import CHOICES, ENVIRONMENT, retain_freed_memory
from engine.models import build_model, resolve_memory_format

ROOT = Path(__file__).resolve().parent.parent
WARMUP = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench/host_memory.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["ddrnet23_slim", "hrnetv2_w18_small", "unet",
                                                        "deeplabv3plus_r50", "segformer_b0"],
                        metavar="NAME", help="architectures (default: the five compared in docs/benchmarks.md)")
    parser.add_argument("--size", type=parse_size, default=(256, 256), help="input height x width (default 256x256)")
    parser.add_argument("--batch", type=int, default=2, help="images per step (at least 2)")
    parser.add_argument("--classes", type=int, default=19, help="number of classes (default: Cityscapes' 19)")
    parser.add_argument("--runs", type=int, default=5, help="timed steps of each kind per process")
    parser.add_argument("--rounds", type=int, default=3, help="processes per setting, alternated")
    parser.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (default 1)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows to this JSON file")
    parser.add_argument("--child", metavar="ARCH", help=argparse.SUPPRESS)  # one measuring process
    return parser


def _timed(step: Callable[[], None], runs: int) -> tuple[list[float], list[int]]:
    for _ in range(WARMUP):
        step()
    seconds, faults = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return seconds, faults


def child(args: argparse.Namespace) -> dict[str, Any]:
    """The measurement inside one process, whose allocator the environment chose."""
    retained = retain_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    memory_format = resolve_memory_format(args.child)
    model = build_model(args.child, args.classes).to(memory_format=memory_format).train()
    images = torch.randn(args.batch, 3, *args.size).contiguous(memory_format=memory_format)
    labels = torch.randint(0, args.classes, (args.batch, *args.size))
    train, train_faults = _timed(training_step(model, images, labels), args.runs)
    with inference_network(model) as network:
        infer, infer_faults = _timed(inference_step(network, images), args.runs)
    return {"retained": retained, "train": train, "train_faults": train_faults, "infer": infer,
            "infer_faults": infer_faults, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(name: str, choice: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name,
               "--size", f"{args.size[0]}x{args.size[1]}", "--batch", str(args.batch),
               "--classes", str(args.classes), "--runs", str(args.runs), "--threads", str(args.threads)]
    environment = {**os.environ, ENVIRONMENT: choice, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{name} ({ENVIRONMENT}={choice}) failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {choice: [] for choice in CHOICES}
    for _ in range(args.rounds):
        for choice in ("system", "retain"):
            results[choice].append(run_child(name, choice, args))
    if not all(result["retained"] for result in results["retain"]):
        raise SystemExit(f"{ENVIRONMENT}=retain did not take effect here (not glibc?): nothing to compare")
    row: dict[str, Any] = {"arch": name}
    for choice, runs in results.items():
        for phase in ("train", "infer"):
            row[f"{phase}_ms_{choice}"] = round(1000 * statistics.median(t for r in runs for t in r[phase]), 1)
            row[f"{phase}_faults_{choice}"] = int(statistics.median(f for r in runs for f in r[f"{phase}_faults"]))
        row[f"peak_mb_{choice}"] = round(statistics.median(r["peak_mb"] for r in runs))
    for phase in ("train", "infer"):
        row[f"{phase}_ratio"] = round(row[f"{phase}_ms_retain"] / row[f"{phase}_ms_system"], 3)
    return row


COLUMNS = (("arch", "arch"), ("train_ms_system", "train ms system"), ("train_ms_retain", "train ms retain"),
           ("train_ratio", "train ratio"), ("train_faults_system", "train faults system"),
           ("train_faults_retain", "train faults retain"), ("infer_ms_system", "infer ms system"),
           ("infer_ms_retain", "infer ms retain"), ("infer_ratio", "infer ratio"),
           ("infer_faults_system", "infer faults system"), ("infer_faults_retain", "infer faults retain"),
           ("peak_mb_system", "peak MB system"), ("peak_mb_retain", "peak MB retain"))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    names = arch_names(args.archs)
    if args.batch < 2:
        parser.error("--batch must be at least 2 (BatchNorm after global pooling needs two samples)")
    settings = {"device": f"CPU {platform.machine()}, {args.threads} threads", "torch": torch.__version__,
                "libc": " ".join(platform.libc_ver()), "size": list(args.size), "batch": args.batch,
                "classes": args.classes, "runs": args.runs, "rounds": args.rounds}
    print(", ".join(f"{key} {value}" for key, value in settings.items()))
    print(table_header(COLUMNS), flush=True)
    rows = []
    for name in names:
        rows.append(measure(name, args))
        print(table_row(rows[-1], COLUMNS, cell=lambda value: f"{value:,}" if isinstance(value, int) else str(value)),
              flush=True)
    if args.json:
        write_results(args.json, settings, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
