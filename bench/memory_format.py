"""Memory format per architecture: training and inference step time, contiguous against channels_last.

``PYTHONPATH=. python bench/memory_format.py [--archs ...] [--size HxW] [--batch N] [--runs N]
[--threads N] [--model-option NAME=VALUE] [--json PATH]`` measures, for each architecture, the
same network (one set of weights, copied) in both memory formats, and interleaves the two at
every step (contiguous, channels_last, contiguous, ...), so that the load of a shared machine
falls on both alike; it reports the median step times and their ratio, next to the format
the architecture declares (``memory_format=`` in its ``@register_model``). This is the
measurement those declarations were set from (issue 22, docs/models.md).

* train ms: forward + backward (cross-entropy, auxiliary head at 0.4) + SGD step on
  ``--batch`` random images.
* infer ms: eval-mode forward of the same images under ``torch.no_grad()``.
* ratio: channels_last / contiguous; below 1, channels_last is faster.
"""
from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.architectures import AUX_LOSS_WEIGHT, arch_names, parse_size, table_header, table_row, write_results
from engine.models import build_model, declared_memory_format

FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench/memory_format.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=None, metavar="NAME",
                        help="architectures (default: all registered)")
    parser.add_argument("--size", type=parse_size, default=(256, 256), help="input height x width (default 256x256)")
    parser.add_argument("--batch", type=int, default=2,
                        help="images per step (at least 2: BatchNorm after global pooling)")
    parser.add_argument("--classes", type=int, default=19, help="number of classes (default: Cityscapes' 19)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per format before timing")
    parser.add_argument("--runs", type=int, default=5, help="timed steps per format (the median is reported)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU intra-op threads (default 1: steadier on a shared machine)")
    parser.add_argument("--model-option", action="append", default=[], metavar="NAME=VALUE",
                        help="architecture option, e.g. base_width=16 (repeatable; applies to every --archs)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows to this JSON file")
    return parser


def interleaved_medians(steps: dict[str, Callable[[], None]], warmup: int, runs: int,
                        synchronize: Callable[[], None] = lambda: None) -> dict[str, float]:
    """Median seconds of each step, timed in turn (a, b, a, b, ...) after ``warmup`` untimed rounds;
    ``synchronize`` waits for queued device work (``torch.cuda.synchronize``) before each clock read."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    synchronize()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(runs):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def training_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the main head, plus the auxiliary head's at ``AUX_LOSS_WEIGHT`` (it trains)."""
    outputs = model.forward_train(images)
    loss = F.cross_entropy(outputs["out"], labels)
    return loss if outputs["aux"] is None else loss + AUX_LOSS_WEIGHT * F.cross_entropy(outputs["aux"], labels)


def training_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        training_loss(model, images, labels).backward()
        optimizer.step()

    return step


def inference_step(model: nn.Module, images: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        with torch.no_grad():
            model(images)

    return step


def measure(name: str, args: argparse.Namespace, options: dict[str, str]) -> dict[str, Any]:
    torch.manual_seed(0)
    base = build_model(name, args.classes, **options)
    models = {label: copy.deepcopy(base).to(memory_format=memory_format) for label, memory_format in FORMATS.items()}
    images = torch.randn(args.batch, 3, *args.size)
    labels = torch.randint(0, args.classes, (args.batch, *args.size))
    inputs = {label: images.contiguous(memory_format=memory_format) for label, memory_format in FORMATS.items()}
    for model in models.values():
        model.train()
    train = interleaved_medians({label: training_step(models[label], inputs[label], labels) for label in FORMATS},
                                args.warmup, args.runs)
    for model in models.values():
        model.eval()
    infer = interleaved_medians({label: inference_step(models[label], inputs[label]) for label in FORMATS},
                                args.warmup, args.runs)
    return {
        "arch": name,
        "declared": declared_memory_format(name),
        "train_ms_contiguous": round(1000 * train["contiguous"], 1),
        "train_ms_channels_last": round(1000 * train["channels_last"], 1),
        "train_ratio": round(train["channels_last"] / train["contiguous"], 3),
        "infer_ms_contiguous": round(1000 * infer["contiguous"], 1),
        "infer_ms_channels_last": round(1000 * infer["channels_last"], 1),
        "infer_ratio": round(infer["channels_last"] / infer["contiguous"], 3),
    }


COLUMNS = (("arch", "arch"), ("declared", "declared"), ("train_ms_contiguous", "train ms contiguous"),
           ("train_ms_channels_last", "train ms channels_last"), ("train_ratio", "train ratio"),
           ("infer_ms_contiguous", "infer ms contiguous"), ("infer_ms_channels_last", "infer ms channels_last"),
           ("infer_ratio", "infer ratio"))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    names = arch_names(args.archs)
    if args.batch < 2:
        parser.error("--batch must be at least 2 (BatchNorm after global pooling needs two samples)")
    options = {}
    for pair in args.model_option:
        key, sep, value = pair.partition("=")
        if not sep:
            parser.error(f"--model-option expects NAME=VALUE, got {pair!r}")
        options[key] = value
    torch.set_num_threads(args.threads)
    settings = {"device": f"CPU {platform.machine()}, {torch.get_num_threads()} threads", "torch": torch.__version__,
                "size": list(args.size), "batch": args.batch, "classes": args.classes, "runs": args.runs,
                "model_options": options}
    print(", ".join(f"{key} {value}" for key, value in settings.items()))
    print(table_header(COLUMNS), flush=True)
    rows = []
    for name in names:
        rows.append(measure(name, args, options))
        print(table_row(rows[-1], COLUMNS), flush=True)
    if args.json:
        write_results(args.json, settings, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
