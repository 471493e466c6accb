"""Training on demo (CPU): supervised UNet and DDRNet-23-slim at 1/8 labels, several seeds.

Trains each architecture with the engine's own trainer (``engine.trainer.train``) on the
built-in ``demo`` dataset (160 masked 64x64 images: 32 for validation, 16 labelled at
1/8) for a fixed number of iterations, once per seed, and prints the final validation
mIoU as mean +- sample standard deviation over the seeds, with the per-seed values,
the wall time of a run and the inference throughput the trainer measured. This is the
table of docs/benchmarks.md, "Training on demo (CPU)".

    PYTHONPATH=. python bench/train_demo.py [--iters 300] [--seeds 0 1 2] [--json results.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from engine.config import RunConfig
from engine.data.builtin.demo import generate_demo
from engine.models import MODELS
from engine.trainer import train

#: What the table compares, with architecture options: a U-Net at base width 16 (the paper's 64 is
#: for 572 px biomedical tiles; at 64 px, 16 keeps a 300-iteration run within minutes on two
#: CPU cores) and the real-time DDRNet-23-slim at its registry defaults.
ARCHITECTURES: dict[str, dict[str, Any]] = {"unet": {"base_width": 16}, "ddrnet23_slim": {}}
#: Every setting the table holds fixed; the rest are engine.config's defaults.
RUN_SETTINGS = {"method": "supervised", "labeled": "1/8", "crop_size": 64, "batch_size": 8, "optimizer": "adamw",
                "lr": 2e-3, "device": "cpu", "log_every": 50}


def run_once(data: Path, arch: str, seed: int, iters: int) -> dict[str, Any]:
    config = RunConfig.from_flat({**RUN_SETTINGS, "data": str(data), "arch": arch, "seed": seed, "iters": iters,
                                  "eval_every": iters, "model_options": ARCHITECTURES.get(arch, {})})
    start = time.perf_counter()
    result = train(config)
    return {"arch": arch, "seed": seed, "iters": iters, "miou": result.last.miou,
            "seconds": time.perf_counter() - start, "images_per_second": result.last.throughput}


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for arch in dict.fromkeys(run["arch"] for run in runs):
        mine = [run for run in runs if run["arch"] == arch]
        mious = [run["miou"] for run in mine]
        rows.append({
            "arch": arch, "model_options": ARCHITECTURES.get(arch, {}), "iters": mine[0]["iters"],
            "seeds": [run["seed"] for run in mine], "miou": mious,
            "miou_mean": statistics.mean(mious), "miou_std": statistics.stdev(mious) if len(mious) > 1 else 0.0,
            "seconds_per_run": statistics.mean(run["seconds"] for run in mine),
            "images_per_second": statistics.median(run["images_per_second"] for run in mine),
        })
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| architecture | iterations | mIoU % (mean +- sd) | per seed | s / run | infer img/s |",
             "| --- | ---: | ---: | --- | ---: | ---: |"]
    for row in rows:
        per_seed = ", ".join(f"{100 * miou:.1f}" for miou in row["miou"])
        options = " ".join(f"{name}={value}" for name, value in row["model_options"].items())
        name = f"{row['arch']} ({options})" if options else row["arch"]
        lines.append(f"| {name} | {row['iters']} | {100 * row['miou_mean']:.1f} +- {100 * row['miou_std']:.1f} "
                     f"| {per_seed} | {row['seconds_per_run']:.0f} | {row['images_per_second']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=300, help="Training iterations per run (default: 300).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Seeds (default: 0 1 2).")
    parser.add_argument("--archs", nargs="+", default=list(ARCHITECTURES),
                        help="Architectures (default: %(default)s); others run at their registry defaults.")
    parser.add_argument("--data", type=Path,
                        help="A demo dataset folder (default: generate one in a temporary folder).")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice).")
    parser.add_argument("--json", type=Path, help="Also write the runs and the summary to this file.")
    args = parser.parse_args(argv)
    missing = [arch for arch in args.archs if arch not in MODELS]
    if missing:
        parser.error(f"not registered: {', '.join(missing)}; registered: {', '.join(MODELS.names())}")
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data or generate_demo(Path(scratch) / "demo")
        runs = []
        for arch in args.archs:
            for seed in args.seeds:
                runs.append(run_once(data, arch, seed, args.iters))
                print(f"{arch} seed {seed}: mIoU {100 * runs[-1]['miou']:.1f} in {runs[-1]['seconds']:.0f} s",
                      file=sys.stderr)
    rows = summarise(runs)
    machine = {"torch": torch.__version__, "threads": torch.get_num_threads(), "processor": platform.processor(),
               "python": platform.python_version()}
    print(table(rows))
    report = {"settings": {**RUN_SETTINGS, "iters": args.iters}, "machine": machine, "summary": rows, "runs": runs}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
