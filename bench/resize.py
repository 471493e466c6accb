"""The stencil gradient of bilinear upscaling against PyTorch's, in a whole training step.

``PYTHONPATH=. python bench/resize.py [--archs ...] [--size HxW] [--batch N] [--runs N]
[--threads N] [--device cpu|cuda] [--amp off|bf16|fp16] [--json PATH]`` times, for each
architecture in its declared memory format, a training step (forward, cross-entropy with the
auxiliary head at 0.4, backward, SGD step) with the engine's resize gradient
(``engine/models/resize.py``: a matrix product per axis for whole-number upscales) and with
PyTorch's (``SEGLAB_RESIZE_GRADIENT=pytorch``), one model, the two interleaved at every step.
The script's process keeps freed host memory as an engine process does
(``engine/host_memory.py``). The engine takes the stencil on the CPU only; ``--device cuda``
measures whether it would pay on a GPU (each timed step ends with a synchronisation;
``--amp`` runs the forward and loss under autocast).

* gradient difference: after one step from the same weights, batch and dropout masks, the
  norm of the difference of all parameter gradients over the norm of PyTorch's (float32
  rounding: 1e-7 to 1e-5).
* ratio: stencil / PyTorch; below 1, the stencil is faster.
"""
from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.architectures import (
    AMP_DTYPES,
    arch_names,
    autocast,
    device_label,
    parse_size,
    table_header,
    table_row,
    write_results,
)
from bench.memory_format import interleaved_medians, training_loss
from bench.reference import training_step
from engine.host_memory import retain_freed_memory
from engine.models import MEMORY_FORMATS, build_model, declared_memory_format, resize


def gradients(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, devices: frozenset[str],
              amp: str) -> torch.Tensor:
    resize.STENCIL_DEVICES = devices
    model = copy.deepcopy(model)
    torch.manual_seed(1)  # the same dropout and drop-path masks for both
    with autocast(images.device, amp):
        loss = training_loss(model, images, labels)
    loss.backward()
    return torch.cat([p.grad.float().flatten() for p in model.parameters() if p.grad is not None])


def with_gradient(devices: frozenset[str], step: Callable[[], None]) -> Callable[[], None]:
    """``step`` with the resize gradient of ``devices`` (``resize.STENCIL_DEVICES``) in force."""
    def run() -> None:
        resize.STENCIL_DEVICES = devices
        step()

    return run


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    device = torch.device(args.device)
    gradient_devices = {"stencil": frozenset({device.type}), "pytorch": frozenset()}  # -> resize.STENCIL_DEVICES
    memory_format = MEMORY_FORMATS[declared_memory_format(name)]
    model = build_model(name, args.classes).to(device, memory_format=memory_format).train()
    images = torch.randn(args.batch, 3, *args.size, device=device).contiguous(memory_format=memory_format)
    labels = torch.randint(0, args.classes, (args.batch, *args.size), device=device)
    ours, theirs = (gradients(model, images, labels, gradient_devices[key], args.amp) for key in ("stencil", "pytorch"))
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    steps = {key: with_gradient(devices, training_step(model, training_loss, images, labels, args.amp))
             for key, devices in gradient_devices.items()}
    seconds = interleaved_medians(steps, args.warmup, args.runs, synchronize)
    model.cpu()  # the next architecture gets the device's memory
    return {
        "arch": name,
        "memory_format": declared_memory_format(name),
        "train_ms_pytorch": round(1000 * seconds["pytorch"], 1),
        "train_ms_stencil": round(1000 * seconds["stencil"], 1),
        "ratio": round(seconds["stencil"] / seconds["pytorch"], 3),
        "gradient_difference": float(f"{((ours - theirs).norm() / theirs.norm()).item():.1e}"),
    }


COLUMNS = (("arch", "arch"), ("memory_format", "format"), ("train_ms_pytorch", "train ms, PyTorch's gradient"),
           ("train_ms_stencil", "train ms, stencil"), ("ratio", "ratio"),
           ("gradient_difference", "gradient difference"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench/resize.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=None, metavar="NAME",
                        help="architectures (default: all registered)")
    parser.add_argument("--size", type=parse_size, default=(256, 256), help="input height x width (default 256x256)")
    parser.add_argument("--batch", type=int, default=2,
                        help="images per step (at least 2: BatchNorm after global pooling)")
    parser.add_argument("--classes", type=int, default=19, help="number of classes (default: Cityscapes' 19)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each before timing")
    parser.add_argument("--runs", type=int, default=9, help="timed steps of each (the median is reported)")
    parser.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (default 1)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the steps run (default cpu)")
    parser.add_argument("--amp", choices=tuple(AMP_DTYPES), default="off",
                        help="autocast dtype of the forward and loss (default off: float32)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows to this JSON file")
    return parser


def main(argv: list[str] | None = None, host_memory: str = "system") -> int:
    """``host_memory``: the allocator setting the process runs with (the script keeps freed memory, as
    an engine process does; a caller's process is left alone)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    names = arch_names(args.archs)
    if args.batch < 2:
        parser.error("--batch must be at least 2 (BatchNorm after global pooling needs two samples)")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this torch sees no CUDA device")
    torch.set_num_threads(args.threads)
    settings = {"device": device_label(args.device), "amp": args.amp, "torch": torch.__version__,
                "host_memory": host_memory, "size": list(args.size), "batch": args.batch, "classes": args.classes,
                "runs": args.runs}
    print(", ".join(f"{key} {value}" for key, value in settings.items()))
    print(table_header(COLUMNS), flush=True)
    rows, configured = [], resize.STENCIL_DEVICES
    try:
        for name in names:
            rows.append(measure(name, args))
            print(table_row(rows[-1], COLUMNS), flush=True)
    finally:
        resize.STENCIL_DEVICES = configured
    if args.json:
        write_results(args.json, settings, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(host_memory="retain" if retain_freed_memory() else "system"))
