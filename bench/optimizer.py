"""The optimizer step alone: torch's per-parameter loop, multi-tensor (``foreach``) and fused kernels.

``PYTHONPATH=. python bench/optimizer.py [--archs ...] [--device cpu|cuda] [--runs N] [--threads N]
[--json PATH]`` builds each architecture's network, gives every parameter a fixed random
gradient, and times ``optimizer.step()`` of SGD (momentum 0.9, weight decay 1e-4) and AdamW
(weight decay 1e-2) in the three implementations, step by step in turn (loop, foreach, fused,
loop, ...), median of ``--runs`` steps after two warm-ups; the trainer's choice per device is
``engine.trainer.FUSED_OPTIMIZER_DEVICES``.

* ms: median milliseconds of one step.
* ratio: fused / loop time.
* max diff: the largest absolute difference of any parameter between the fused and the loop
  copy after the timed steps (rounding: the kernels order their operations differently).
"""
from __future__ import annotations

import argparse
import copy
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from bench.architectures import arch_names, table_header, table_row, write_results
from bench.memory_format import interleaved_medians
from engine.models import build_model, count_parameters

IMPLEMENTATIONS = {"loop": {"foreach": False, "fused": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
OPTIMIZERS = {
    "sgd": lambda parameters, **kind: torch.optim.SGD(parameters, lr=1e-3, momentum=0.9, weight_decay=1e-4, **kind),
    "adamw": lambda parameters, **kind: torch.optim.AdamW(parameters, lr=1e-3, weight_decay=1e-2, **kind),
}
COLUMNS = (("arch", "arch"), ("optimizer", "optimizer"), ("params", "params"), ("loop_ms", "loop ms"),
           ("foreach_ms", "foreach ms"), ("fused_ms", "fused ms"), ("ratio", "fused / loop"),
           ("max_diff", "max diff, fused vs loop"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench/optimizer.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["ddrnet23_slim", "segformer_b0", "deeplabv3plus_r50"],
                        metavar="NAME", help="architectures whose parameters are stepped")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--runs", type=int, default=20, help="timed steps of each implementation")
    parser.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (default 1)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows to this JSON file")
    return parser


def step(optimizer: torch.optim.Optimizer, device: torch.device):
    def run() -> None:
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return run


def measure(name: str, optimizer: str, device: torch.device, runs: int) -> dict[str, Any]:
    torch.manual_seed(0)
    base = build_model(name, 19).to(device)
    gradients = [torch.randn_like(parameter) for parameter in base.parameters()]
    models = {kind: copy.deepcopy(base) for kind in IMPLEMENTATIONS}
    for model in models.values():
        for parameter, gradient in zip(model.parameters(), gradients, strict=True):
            parameter.grad = gradient.clone()
    optimizers = {kind: OPTIMIZERS[optimizer](models[kind].parameters(), **IMPLEMENTATIONS[kind])
                  for kind in IMPLEMENTATIONS}
    seconds = interleaved_medians({kind: step(optimizers[kind], device) for kind in IMPLEMENTATIONS}, 2, runs)
    max_diff = max((fused - loop).abs().max().item()
                   for fused, loop in zip(models["fused"].parameters(), models["loop"].parameters(), strict=True))
    row: dict[str, Any] = {"arch": name, "optimizer": optimizer, "params": count_parameters(base)}
    row |= {f"{kind}_ms": round(1000 * seconds[kind], 2) for kind in IMPLEMENTATIONS}
    row |= {"ratio": round(seconds["fused"] / seconds["loop"], 3), "max_diff": f"{max_diff:.1e}"}
    return row


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = arch_names(args.archs)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device here")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    settings = {"device": torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"CPU {platform.machine()}, {torch.get_num_threads()} threads",
                "torch": torch.__version__, "runs": args.runs}
    print(", ".join(f"{key} {value}" for key, value in settings.items()))
    print(table_header(COLUMNS), flush=True)
    rows = []
    for name in names:
        for optimizer in OPTIMIZERS:
            rows.append(measure(name, optimizer, device, args.runs))
            print(table_row(rows[-1], COLUMNS, cell=lambda v: f"{v:,}" if isinstance(v, int) else str(v)), flush=True)
    if args.json:
        write_results(args.json, settings, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
