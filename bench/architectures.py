"""Architecture benchmark: parameters, GFLOPs, training and inference throughput.

``PYTHONPATH=. python bench/architectures.py [--archs ...] [--size HxW] [--device cpu|cuda]
[--amp bf16|fp16|off] [--memory-format contiguous|channels_last|auto] [--compile MODE]
[--batch N] [--json PATH]`` (plus ``--classes``, ``--warmup``, ``--runs``, ``--threads``) prints one
row per architecture as it is measured and optionally writes the same rows as JSON. On a
shared CPU, ``--threads 1`` gives steadier numbers: idle OpenMP threads of a loaded machine
slow every convolution down.

* params: millions of parameters at ``--classes`` classes (19 by default, Cityscapes).
* GFLOPs: multiply-accumulates x 1e-9 for one image at ``--size`` in eval mode, counted
  by ``torch.utils.flop_counter.FlopCounterMode`` on the meta device. FlopCounterMode
  counts a multiply-add as 2 FLOPs; we report half of it, the "GFLOPs" convention of
  the segmentation papers (DDRNet, HRNet, SegFormer). Only convolutions, matrix
  products and attention are counted, as in those papers.
* train img/s: forward + backward + SGD step on random data, ``batch / median step time``.
  Training uses at least 2 images per step: BatchNorm after global pooling (PSPNet,
  DeepLab, DDRNet) cannot normalise a single value per channel.
* infer FPS: eval-mode forward of the network as the engine's evaluation runs it (a copy with
  BatchNorm folded into the convolutions, ``engine.evaluation.inference_network``),
  ``batch / median time``, after warm-up runs; on CUDA each
  timed run ends with ``torch.cuda.synchronize()`` and cuDNN picks its fastest kernels
  (``cudnn.benchmark``) during the warm-up. ``--compile MODE`` times the inference forward
  through ``torch.compile`` (``reduce-overhead`` adds CUDA graphs, which removes the
  per-kernel launch cost that dominates small models at batch 1).
* ``--compile`` compiles training and inference the way a run with ``compile=true`` does
  (``engine.models.compile_model``); the first step of each compiles, and its time less one
  steady step is reported apart as "train compile s" / "infer compile s", never in the rates.
* ``--memory-format auto`` puts each architecture in its declared layout, as runs do by default.
* ``--no-train`` times inference alone (and, with ``--compile``, compiles only its graphs).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from engine.evaluation import inference_network
from engine.models import MODELS, build_model, compile_model, count_parameters, resolve_memory_format
from engine.options import clean_options

AUX_LOSS_WEIGHT = 0.4  # PSPNet / DDRNet deep-supervision weight
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}
MIN_TRAIN_BATCH = 2


def autocast(device: torch.device, amp: str) -> AbstractContextManager:
    """``--amp``'s autocast on ``device`` (``off``: none, float32)."""
    dtype = AMP_DTYPES[amp]
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def device_label(device: str) -> str:
    """What a bench's settings call the device it ran on: the GPU's name, or the CPU and its threads."""
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"CPU {platform.machine()}, {torch.get_num_threads()} threads"


def parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512x1024 (height x width), got {text!r}") from None
    if height < 16 or width < 16:
        raise argparse.ArgumentTypeError(f"size must be at least 16x16, got {text!r}")
    return height, width


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench/architectures.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=None, metavar="NAME",
                        help="architectures (default: all registered)")
    parser.add_argument("--size", type=parse_size, default=(512, 1024), help="input height x width, e.g. 512x1024")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--amp", choices=tuple(AMP_DTYPES), default="off", help="autocast dtype for timing")
    parser.add_argument("--memory-format", choices=("contiguous", "channels_last", "auto"), default="contiguous",
                        help="layout of model and input; auto: each architecture's declared one (what a run uses)")
    parser.add_argument("--channels-last", action="store_true", help="the same as --memory-format channels_last")
    parser.add_argument("--batch", type=int, default=1, help="images per step")
    parser.add_argument("--classes", type=int, default=19, help="number of classes (default: Cityscapes' 19)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs before timing")
    parser.add_argument("--runs", type=int, default=10, help="timed runs (the median is reported)")
    parser.add_argument("--threads", type=int, default=None, help="CPU intra-op threads (default: PyTorch's choice)")
    parser.add_argument("--compile", choices=("default", "reduce-overhead", "max-autotune"), default=None,
                        help="torch.compile the model in this mode for training and inference, as a run with "
                        "compile=true does (default: eager); compile time is reported apart")
    parser.add_argument("--no-train", action="store_true",
                        help="time inference only (with --compile: compiles the evaluation graphs alone)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows to this JSON file")
    return parser


def count_gmacs(name: str, num_classes: int, size: tuple[int, int]) -> float:
    """Multiply-accumulates (x 1e-9) of one eval-mode forward, counted on the meta device."""
    entry = MODELS.get(name)
    with torch.device("meta"):
        model = entry.factory(num_classes=num_classes, **clean_options(entry.options, {})).eval()
        image = torch.empty(1, 3, *size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(image)
    return counter.get_total_flops() / 2 / 1e9


def median_seconds(step: Callable[[], None], device: torch.device, warmup: int, runs: int) -> float:
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    synchronize()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def first_call_seconds(step: Callable[[], None], device: torch.device) -> float:
    """Seconds of one call of ``step``: under torch.compile, the first one compiles."""
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    step()
    synchronize()
    return time.perf_counter() - start


def benchmark(name: str, args: argparse.Namespace) -> dict[str, Any]:
    with ExitStack() as stack:
        return _benchmark(name, args, stack)


def _benchmark(name: str, args: argparse.Namespace, stack: ExitStack) -> dict[str, Any]:
    device = torch.device(args.device)
    memory_format = resolve_memory_format(name, "channels_last" if args.channels_last else args.memory_format)

    model = build_model(name, args.classes).to(device, memory_format=memory_format)
    row: dict[str, Any] = {
        "arch": name,
        "params_m": round(count_parameters(model) / 1e6, 2),
        "gflops": round(count_gmacs(name, args.classes, args.size), 2),
        "memory_format": "channels_last" if memory_format == torch.channels_last else "contiguous",
    }
    if args.compile:  # the engine's compile=true: encoder and decoders compiled in place
        compile_model(model, mode=None if args.compile == "default" else args.compile)

    train_batch = max(args.batch, MIN_TRAIN_BATCH)
    images = torch.randn(train_batch, 3, *args.size, device=device).contiguous(memory_format=memory_format)
    labels = torch.randint(0, args.classes, (train_batch, *args.size), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, args.amp):
            outputs = model.forward_train(images)
            loss = F.cross_entropy(outputs["out"], labels)
            if outputs["aux"] is not None:
                loss = loss + AUX_LOSS_WEIGHT * F.cross_entropy(outputs["aux"], labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    if not args.no_train:
        model.train()
        first = first_call_seconds(train_step, device) if args.compile else 0.0
        seconds = median_seconds(train_step, device, args.warmup, args.runs)
        row["train_img_s"] = round(train_batch / seconds, 2)
        row["train_batch"] = train_batch
        if args.compile:  # the first step compiled and ran once; the steady step time is taken off
            row["train_compile_s"] = round(first - seconds, 1)

    model.eval()
    inputs = images[: args.batch]
    network = stack.enter_context(inference_network(model))  # as the engine's evaluation runs it

    def infer_step() -> None:
        with torch.no_grad(), autocast(device, args.amp):
            network(inputs)

    first = first_call_seconds(infer_step, device) if args.compile else 0.0  # eval mode compiles anew
    seconds = median_seconds(infer_step, device, args.warmup, args.runs)
    row["infer_fps"] = round(args.batch / seconds, 2)
    if args.compile:
        row["infer_compile_s"] = round(first - seconds, 1)
    return row


COLUMNS = (("arch", "arch"), ("params_m", "params (M)"), ("gflops", "GFLOPs"), ("memory_format", "memory format"),
           ("train_img_s", "train img/s"), ("infer_fps", "infer FPS"))
#: With --compile: compilation time, apart from the step times above (first call minus a steady step).
COMPILE_COLUMNS = (("train_compile_s", "train compile s"), ("infer_compile_s", "infer compile s"))


def arch_names(archs: list[str] | None) -> list[str]:
    """``--archs`` as given (default: every registered architecture); an unknown name fails here,
    before any timing, with the list of valid ones."""
    names = archs or MODELS.names()
    for name in names:
        MODELS.get(name)
    return names


def table_header(columns: tuple[tuple[str, str], ...] = COLUMNS) -> str:
    return "| " + " | ".join(title for _, title in columns) + " |\n|" + "|".join(" --- " for _ in columns) + "|"


def table_row(row: dict[str, Any], columns: tuple[tuple[str, str], ...] = COLUMNS,
              cell: Callable[[Any], str] = str) -> str:
    return "| " + " | ".join(cell(row[key]) for key, _ in columns) + " |"


def write_results(path: Path, settings: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """A bench's JSON: the settings it ran with and one object per printed row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    names = arch_names(args.archs)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for but no CUDA device is available")
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.device == "cuda"
    device_name = device_label(args.device)
    height, width = args.size
    settings = {
        "device": device_name,
        "torch": torch.__version__,
        "size": [height, width],
        "batch": args.batch,
        "amp": args.amp,
        "memory_format": "channels_last" if args.channels_last else args.memory_format,
        "compile": args.compile or "off",
        "classes": args.classes,
    }
    print(", ".join(f"{key} {value}" for key, value in settings.items()))
    print("GFLOPs = multiply-accumulates x 1e-9 per image (FlopCounterMode FLOPs / 2), as in the papers.")
    columns = COLUMNS + COMPILE_COLUMNS if args.compile else COLUMNS
    if args.no_train:
        columns = tuple(column for column in columns if not column[0].startswith("train"))
    print(table_header(columns), flush=True)
    rows = []
    for name in names:  # rows appear as they are measured: big models take minutes on a CPU
        rows.append(benchmark(name, args))
        print(table_row(rows[-1], columns), flush=True)
    if args.json:
        write_results(args.json, settings, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
