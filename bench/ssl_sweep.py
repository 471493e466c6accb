"""Semi-supervised sweep: every method x label budget x seed, through the engine's own trainer.

Each run trains one method (``engine.trainer.train``) at one label budget and seed, and
its result is written to ``--results`` (``bench/results/ssl.json``) the moment it
finishes; a rerun skips every run already there, so an interrupted sweep resumes where
it stopped, and several sweeps may share one results file (writes take a lock and merge;
each run is looked up again just before it starts, so a run that another sweep finished
meanwhile is not trained twice).
``--jobs N`` trains N runs at once, each with one torch thread; runs go seed by seed, so
a sweep cut short still holds one seed of every method (the screening). After each run
``--table`` (docs/results.md) is rewritten from the results file by bench/ssl_page.py;
``--page`` rewrites it without training.

    PYTHONPATH=. python bench/ssl_sweep.py --jobs 2 --seeds 0 --budgets 16 1/16
    PYTHONPATH=. python bench/ssl_sweep.py --jobs 2 --methods unimatch:feature_dropout=0 --seeds 0 1
    PYTHONPATH=. python bench/ssl_sweep.py --device cuda --jobs 10 --workers 1 \
        --results bench/results/ssl-gpu.json --table docs/results-gpu.md

The first screens every method at both budgets on seed 0, the second adds an ablation to the
same file, the third starts a GPU table of its own (a results file holds one device's runs).

A method is ``NAME`` (its documented defaults) or ``NAME:OPTION=VALUE[,OPTION=VALUE]``.
The results file holds ``settings`` (dataset, architecture and its options, iterations,
every fixed training setting) and ``results``: method -> label budget -> list of
``{"seed", "miou", "seconds", "machine", "curve", "iou"}`` (the curve is the validation mIoU
at thirds of the run, to show whether it had converged; the machine is the CPU or GPU model
and torch version, since the same run can end elsewhere on other hardware). Runs made
under other settings are refused rather than mixed into one table: point ``--results``
at another file.

On the CPU the runs use torch's AVX2 kernels by default (``--kernels``, bench/kernels.py),
so that a results file can be extended on another x86-64 machine; ``--kernels native``
runs this CPU's own (a results file records which).
"""
from __future__ import annotations

import argparse
import fcntl
import json
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.kernels import CPU_KERNELS, DEFAULT_KERNELS, check, pin
from bench.ssl_page import markdown_table, runs_of, write_page

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "ssl.json"
TABLE = ROOT / "docs" / "results.md"
DATA_DIR = ROOT / "bench" / "data"
#: The reference table's architecture: a small U-Net whose strided stem quarters the CPU cost.
DEFAULT_ARCH, DEFAULT_ARCH_OPTIONS = "unet", {"base_width": 16, "stem_stride": 2}
DEFAULT_BUILTIN, DEFAULT_ITERS = "fashion-scenes", 3000
#: Every setting the table holds fixed; the rest are engine.config's defaults. The memory format
#: is pinned to the layout the reference runs trained in: U-Net's declared channels_last computes
#: the same function, but its other rounding would move a 3000-step run off the file's digits
#: (and at 64 px on one thread it trains no faster, bench/memory_format.py).
RUN_SETTINGS = {"crop_size": 64, "batch_size": 8, "optimizer": "adamw", "lr": 2e-3, "log_every": 50,
                "memory_format": "contiguous"}


def parse_method(spec: str) -> tuple[str, dict[str, str]]:
    """``unimatch`` or ``unimatch:threshold_mode=distribution,feature_dropout=0.3`` -> (name, options)."""
    from engine.sweeps import parse_method as parse  # imported here: torch must not load before ``pin``

    return parse(spec)


#: Evaluations per run: the curve shows whether a run had converged (the last two points agree).
EVALUATIONS_PER_RUN = 3


def run_config(data: str, arch: str, arch_options: dict, method: str, budget: str, seed: int, iters: int,
               scale: tuple[float, float] = (1.0, 1.0), device: str = "cpu", workers: int = 0, blur: str = "crop",
               **overrides: Any):
    """The engine config of one sweep run (``bench/method_trace.py`` retraces the same run from it)."""
    from engine.config import RunConfig
    from engine.sweeps import Cell, run_settings

    base = {**RUN_SETTINGS, "data": data, "arch": arch, "model_options": arch_options, "iters": iters,
            "eval_every": max(1, iters // EVALUATIONS_PER_RUN), "device": device, "num_workers": workers,
            "min_scale": scale[0], "max_scale": scale[1], "strong_blur": blur}
    return RunConfig.from_flat({**run_settings(base, Cell(method, budget, seed)), **overrides})


def run_once(data: str, arch: str, arch_options: dict, method: str, budget: str, seed: int, iters: int,
             scale: tuple[float, float], device: str = "cpu", workers: int = 0, blur: str = "crop",
             kernels: str = "native") -> dict[str, Any]:
    """One training run in a worker process with one torch thread (and ``workers`` loader processes)."""
    import torch

    check(kernels)  # a GPU sweep passes native

    from engine.reporting import NullReporter
    from engine.trainer import train

    class Curve(NullReporter):
        def __init__(self) -> None:
            self.points: list[list[float]] = []

        def log_evaluation(self, step, result) -> None:
            self.points.append([step, round(result.miou, 4)])

    torch.set_num_threads(1)
    config = run_config(data, arch, arch_options, method, budget, seed, iters, scale, device, workers, blur)
    curve = Curve()
    start = time.perf_counter()
    result = train(config, curve)
    return {"method": method, "budget": budget, "seed": seed, "miou": result.last.miou,
            "seconds": round(time.perf_counter() - start, 1), "machine": machine(device), "curve": curve.points,
            "iou": {name: None if iou is None else round(iou, 4)
                    for name, iou in zip(result.last.class_names, result.last.iou, strict=True)}}


def machine(device: str) -> str:
    """What produced a run: the same seed and code can end a few points apart on another CPU.

    Float results depend on which kernels run (oneDNN picks AVX2 or AVX-512 code by CPU,
    cuDNN by GPU), and a 3000-step run from scratch magnifies the last-bit differences.
    """
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []
    model = names[0] if names else platform.processor() or platform.machine()
    return f"{model} ({torch.backends.cpu.get_cpu_capability()}), torch {torch.__version__}"


def load_results(path: Path, settings: dict[str, Any]) -> dict[str, Any]:
    if not path.exists():
        return {"settings": settings, "results": {}}
    stored = json.loads(path.read_text())
    if stored["settings"] != settings:
        differ = ", ".join(f"{key} {stored['settings'].get(key)!r} there, {settings.get(key)!r} here"
                           for key in sorted(set(stored["settings"]) | set(settings))
                           if stored["settings"].get(key) != settings.get(key))
        raise SystemExit(f"{path} holds runs made with other settings ({differ}); "
                         f"pass the same settings, or --results with another file to start a new table")
    return stored


def save_json(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(content, indent=2) + "\n")
    temporary.replace(path)  # atomic: an interrupted write never loses finished runs


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Exclusive lock beside ``path``: sweeps sharing a results file (or generating a dataset) take turns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _add_runs(stored: dict[str, Any], runs: list[dict[str, Any]]) -> bool:
    """Add the ``runs`` (each with its method and budget) not already there; True if any was new."""
    changed = False
    for run in runs:
        if not is_done(stored, run["method"], run["budget"], run["seed"]):
            runs_there = stored["results"].setdefault(run["method"], {}).setdefault(run["budget"], [])
            runs_there.append({key: value for key, value in run.items() if key not in ("method", "budget")})
            changed = True
    return changed


def record_run(path: Path, settings: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """Add one finished run to the results file, re-read under the lock so that runs written
    meanwhile by another sweep on the same file are kept."""
    with locked(path):
        stored = load_results(path, settings)
        if _add_runs(stored, [run]):
            save_json(path, stored)
    return stored


def merge_results(target: Path, sources: list[Path]) -> dict[str, Any]:
    """Add every run of ``sources`` (other sweeps' results files, same settings) to ``target``."""
    stored: dict[str, Any] = {}
    for source in sources:
        other = json.loads(source.read_text())
        with locked(target):
            stored = load_results(target, other["settings"])
            if _add_runs(stored, runs_of(other)):
                save_json(target, stored)
    return stored


def finished_elsewhere(path: Path, settings: dict[str, Any], method: str, budget: str, seed: int) -> bool:
    """Whether another sweep sharing ``path`` recorded this run after this sweep planned it."""
    with locked(path):
        return is_done(load_results(path, settings), method, budget, seed)


def is_done(stored: dict[str, Any], method: str, budget: str, seed: int) -> bool:
    return any(run["seed"] == seed for run in stored["results"].get(method, {}).get(budget, []))


def shown(path: Path) -> str:
    """A results file as the page names it: relative to the repository, as its commands run."""
    return os.path.relpath(path.resolve(), ROOT)


def resolve_data(args: argparse.Namespace) -> Path:
    if args.data:
        return args.data.resolve()
    from engine.data.builtin import generate

    target = DATA_DIR / args.builtin
    with locked(target):  # two sweeps started at once on a fresh machine generate it once
        if not target.exists():
            generate(args.builtin, target)
    return target


def main(argv: list[str] | None = None) -> int:
    from engine.config import ConfigError
    from engine.data.transforms import BLUR_MODES
    from engine.methods import METHODS
    from engine.options import clean_options
    from engine.sweeps import Grid, cells

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=METHODS.names(),
                        help="Methods, each NAME or NAME:OPTION=VALUE[,OPTION=VALUE] (default: every registered one).")
    parser.add_argument("--budgets", nargs="+", default=["16", "1/16"], help="Label budgets (default: 16 1/16).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Seeds (default: 0 1 2).")
    parser.add_argument("--iters", type=int, default=DEFAULT_ITERS, help="Training iterations per run (default: 3000).")
    parser.add_argument("--arch", default=DEFAULT_ARCH, help="Architecture (default: unet).")
    parser.add_argument("--arch-options", type=json.loads, default=None,
                        help='Architecture options as JSON (default for unet: {"base_width": 16, "stem_stride": 2}).')
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, help="A dataset folder (upload layout).")
    source.add_argument("--builtin", default=DEFAULT_BUILTIN,
                        help="Built-in dataset generated once into bench/data/NAME (default: fashion-scenes).")
    parser.add_argument("--scale", type=float, nargs=2, default=[1.0, 1.0], metavar=("MIN", "MAX"),
                        help="Random rescaling range of training images (default: 1 1, off: UniMatch's 0.5 2.0 "
                             "shrinks the 64 px canvases' garments to a few pixels).")
    parser.add_argument("--blur", choices=BLUR_MODES, default="crop",
                        help="Strong-view blur (the run setting strong_blur; default: crop, UniMatch's sigma scaled "
                             "to the 64 px crop; pixels: its 0.1-2.0 px as at 512 px crops).")
    parser.add_argument("--kernels", choices=CPU_KERNELS, default=DEFAULT_KERNELS,
                        help="torch's CPU kernels (default: avx2, so that runs reproduce across x86-64 machines; "
                             "native: this CPU's own).")
    parser.add_argument("--jobs", type=int, default=1, help="Runs trained at once, one torch thread each.")
    parser.add_argument("--device", default="cpu",
                        help="cpu or cuda (default: cpu). Several --jobs share one GPU; "
                             "a GPU sweep needs its own --results.")
    parser.add_argument("--workers", type=int, default=0,
                        help="DataLoader processes per run (default: 0; results do not depend on it).")
    parser.add_argument("--results", type=Path, default=RESULTS, help="Results file (default: bench/results/ssl.json).")
    parser.add_argument("--table", type=Path, default=TABLE, help="Results page (default: docs/results.md).")
    parser.add_argument("--merge", type=Path, nargs="+", metavar="FILE",
                        help="Only merge these results files (made with the same settings) into --results, then exit.")
    parser.add_argument("--page", action="store_true",
                        help="Only rewrite --table from --results (keeping its findings), then exit.")
    args = parser.parse_args(argv)
    if args.merge or args.page:
        stored = merge_results(args.results, args.merge) if args.merge else json.loads(args.results.read_text())
        write_page(args.table, stored, shown(args.results))
        print(markdown_table(stored, shown(args.results)))
        return 0
    try:
        specs = [parse_method(m) for m in args.methods]
    except ValueError as error:
        parser.error(str(error))
    unknown = [name for name, _ in specs if name not in METHODS]
    if unknown:
        parser.error(f"not registered: {', '.join(unknown)}; registered: {', '.join(METHODS.names())}")
    for name, options in specs:
        try:
            clean_options(METHODS.get(name).options, options)
        except ValueError as error:
            parser.error(f"{name}: {error}")
    arch_options = args.arch_options
    if arch_options is None:
        arch_options = DEFAULT_ARCH_OPTIONS if args.arch == DEFAULT_ARCH else {}

    data = resolve_data(args)
    settings = {"data": os.path.relpath(data, ROOT), "arch": args.arch, "arch_options": arch_options,
                "iters": args.iters, "min_scale": args.scale[0], "max_scale": args.scale[1], **RUN_SETTINGS,
                "device": args.device, "strong_blur": args.blur}
    kernels = args.kernels if args.device == "cpu" else "native"
    if kernels != "native":
        settings["cpu_kernels"] = kernels
    stored = load_results(args.results, settings)
    # Seed-major order (engine.sweeps, as a web sweep): a sweep cut short still has one seed of every method.
    try:
        planned = cells(Grid(methods=args.methods, budgets=args.budgets, seeds=args.seeds), max_runs=None)
    except ConfigError as error:
        parser.error(str(error))
    todo = [(c.method, c.budget, c.seed) for c in planned if not is_done(stored, c.method, c.budget, c.seed)]
    print(f"{len(todo)} runs to train ({len(planned) - len(todo)} already done)", file=sys.stderr)

    # Workers are spawned, never forked: CUDA cannot be used in a forked child, torch picks its CPU
    # kernels when it is imported (which a spawned worker does after ``pin``), and a child forked
    # from a parent with threads (torch's, a test's) can hang on a lock it inherited held.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context, initializer=pin, initargs=(kernels,)) as pool:
        pending: set = set()
        while todo or pending:
            while todo and len(pending) < args.jobs:  # runs start one at a time: another sweep may have done one
                method, budget, seed = todo.pop(0)
                if finished_elsewhere(args.results, settings, method, budget, seed):
                    print(f"{method} labels {budget} seed {seed}: already in {args.results.name}, skipped",
                          file=sys.stderr)
                    continue
                pending.add(pool.submit(run_once, str(data), args.arch, arch_options, method, budget, seed,
                                        args.iters, tuple(args.scale), args.device, args.workers, args.blur, kernels))
            if not pending:
                break
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                run = future.result()
                stored = record_run(args.results, settings, run)
                write_page(args.table, stored, shown(args.results))
                print(f"{run['method']} labels {run['budget']} seed {run['seed']}: mIoU {100 * run['miou']:.1f} "
                      f"in {run['seconds']:.0f} s", file=sys.stderr)
    print(markdown_table(stored, shown(args.results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
