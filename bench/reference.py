"""SegLab's networks beside reference implementations from the package index: parameters and step times.

``PYTHONPATH=. python bench/reference.py [--size HxW] [--batch N] [--runs N] [--threads N]
[--device cpu|cuda] [--amp off|bf16|fp16] [--json PATH]``
needs ``transformers`` (``pip install -r requirements-bench.txt``, never part of ``make test``),
which builds both references from a config, without weights, on the CPU build of torch:

* ``segformer_b0`` against ``transformers``' ``SegformerForSemanticSegmentation`` with a
  ``SegformerConfig`` of B0 (Xie et al. 2021, arXiv:2105.15203: widths 32-256, depths 2,
  decoder width 256), at the same number of classes;
* the ResNet-50 encoder of ``pspnet_r50`` / ``deeplabv3plus_r50`` (``engine.models.resnet.ResNet``,
  torchvision's v1.5 layout) against ``ResNetModel`` from a ``ResNetConfig`` of ResNet-50
  (bottleneck stages 3, 4, 6, 3; stride on the 3x3 convolution, as ours).

The parameter counts must be identical (the run stops otherwise). Both sides do the same
work per step: training is forward + loss + backward + SGD step (SegFormer: cross-entropy on
logits upsampled to the labels, as ``transformers`` computes its loss; ResNet: the mean of
the last feature map), inference an eval-mode forward under ``torch.no_grad()`` (SegFormer's
reference logits are upsampled to the input size, as ours are). The steps of one pair run
interleaved (ours, reference, ours, ...), so a shared machine's load falls on all alike.
``--device cuda`` runs every side on the GPU (each timed step ends with a synchronisation) and
``--amp`` puts every side's forward and loss under the same autocast, so the ratios compare
the code at one precision.

``--official NAME CLONE`` (repeatable) adds a pair for code that is not packaged: our ``NAME``
beside the official implementation imported from a local clone of its repository
(``bench/official.py``: DDRNet-23-slim, HRNetV2-W18-Small-v2, UNet); ``--pairs`` with no names
leaves the packaged pairs out, and ``transformers`` is then not needed.

"ours" is SegLab as a run uses it by default: in its architecture's declared memory format
(``engine.models.declared_memory_format``), and for inference the network as the engine's
evaluation and ``predict`` run it (``engine.evaluation.inference_network``: BatchNorm folded
into the convolutions). "ours plain" is the same network as the references run theirs:
contiguous, BatchNorm layers as trained; the two show what the engine's defaults add and
what the network code alone does. Ratios are ours / reference: below 1, ours is faster.
The script's process keeps freed host memory, as an engine process does
(``engine/host_memory.py``; ``SEGLAB_HOST_MEMORY=system`` for glibc's defaults), which
every side shares.
"""
from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.architectures import AMP_DTYPES, autocast, device_label, parse_size, table_header, table_row, write_results
from bench.memory_format import interleaved_medians, training_loss
from bench.official import OFFICIAL, official_forward, official_loss
from engine.evaluation import inference_network
from engine.host_memory import retain_freed_memory
from engine.models import MEMORY_FORMATS, build_model, count_parameters, declared_memory_format
from engine.models.resnet import RESNET_DEPTHS, ResNet

#: The registered architectures whose encoder is the ResNet-50 compared here.
RESNET_ARCH = "deeplabv3plus_r50"
#: SegFormer-B0 (official config ``mit_b0`` with the B0 decoder).
SEGFORMER_B0 = {"hidden_sizes": [32, 64, 160, 256], "depths": [2, 2, 2, 2], "num_attention_heads": [1, 2, 5, 8],
                "sr_ratios": [8, 4, 2, 1], "decoder_hidden_size": 256}


Loss = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]  # (model, images, labels) -> loss
Forward = Callable[[nn.Module, torch.Tensor], Any]


@dataclass
class Pair:
    """One of ours and its reference, each with its loss (training) and forward (inference)."""

    name: str
    reference: str
    ours: nn.Module
    theirs: nn.Module
    memory_format: str  # ours, as declared by the architecture
    ours_loss: Loss
    theirs_loss: Loss
    theirs_forward: Forward


def _forward(model: nn.Module, images: torch.Tensor) -> Any:
    return model(images)


def segformer_pair(classes: int) -> Pair:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    theirs = SegformerForSemanticSegmentation(SegformerConfig(num_labels=classes, **SEGFORMER_B0))

    def ours_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model.forward_train(images)["out"], labels)

    def theirs_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return model(pixel_values=images, labels=labels).loss

    def theirs_forward(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        logits = model(pixel_values=images).logits  # (B, K, H/4, W/4): sized as ours returns them
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)

    return Pair("segformer_b0", "transformers SegformerForSemanticSegmentation (B0 config)",
                build_model("segformer_b0", classes), theirs, declared_memory_format("segformer_b0"),
                ours_loss, theirs_loss, theirs_forward)


def resnet_pair(classes: int) -> Pair:
    from transformers import ResNetConfig, ResNetModel

    theirs = ResNetModel(ResNetConfig(depths=list(RESNET_DEPTHS[50]), layer_type="bottleneck"))

    def ours_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return model(images)[-1].mean()

    def theirs_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return model(pixel_values=images).last_hidden_state.mean()

    def theirs_forward(model: nn.Module, images: torch.Tensor) -> Any:
        return model(pixel_values=images)

    return Pair("resnet50 encoder", "transformers ResNetModel (ResNet-50 config)", ResNet(RESNET_DEPTHS[50]), theirs,
                declared_memory_format(RESNET_ARCH), ours_loss, theirs_loss, theirs_forward)


def official_pair(name: str, clone: Path, classes: int) -> Pair:
    """Our ``name`` beside the official code in the local clone ``clone`` (``bench/official.py``)."""
    official = OFFICIAL[name]
    label = name + "".join(f" {key}={value}" for key, value in official.options.items())
    return Pair(label, f"official code ({official.repository})", build_model(name, classes, **official.options),
                official.network(clone, classes), declared_memory_format(name), training_loss, official_loss,
                official_forward)


def training_step(model: nn.Module, loss: Loss, images: torch.Tensor, labels: torch.Tensor,
                  amp: str = "off") -> Callable[[], None]:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(images.device, amp):
            value = loss(model, images, labels)
        value.backward()
        optimizer.step()

    return step


def inference_step(model: nn.Module, forward: Forward, images: torch.Tensor, amp: str = "off") -> Callable[[], None]:
    def step() -> None:
        with torch.no_grad(), autocast(images.device, amp):
            forward(model, images)

    return step


def measure(pair: Pair, args: argparse.Namespace) -> dict[str, Any]:
    ours_params, theirs_params = count_parameters(pair.ours), count_parameters(pair.theirs)
    if ours_params != theirs_params:
        raise SystemExit(f"{pair.name}: {ours_params:,} parameters here but {theirs_params:,} in the reference; "
                         "the comparison needs the same network")
    device = torch.device(args.device)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    memory_format = MEMORY_FORMATS[pair.memory_format]
    images = torch.randn(args.batch, 3, *args.size, device=device)
    labels = torch.randint(0, args.classes, (args.batch, *args.size), device=device)
    sides = {  # name: (model, its input, loss, forward)
        "ours": (copy.deepcopy(pair.ours).to(device, memory_format=memory_format),
                 images.contiguous(memory_format=memory_format), pair.ours_loss, _forward),
        "ours_plain": (pair.ours.to(device), images, pair.ours_loss, _forward),
        "reference": (pair.theirs.to(device), images, pair.theirs_loss, pair.theirs_forward),
    }
    for model, *_ in sides.values():
        model.train()
    train = interleaved_medians({key: training_step(model, loss, inputs, labels, args.amp)
                                 for key, (model, inputs, loss, _) in sides.items()},
                                args.warmup, args.runs, synchronize)
    for model, *_ in sides.values():
        model.eval()
    with inference_network(sides["ours"][0]) as network:  # as the engine's evaluation and predict run it
        sides["ours"] = (network, *sides["ours"][1:])
        infer = interleaved_medians({key: inference_step(model, forward, inputs, args.amp)
                                     for key, (model, inputs, _, forward) in sides.items()},
                                    args.warmup, args.runs, synchronize)
    for model, *_ in sides.values():
        model.cpu()  # the next pair gets the device's memory
    row: dict[str, Any] = {"model": pair.name, "reference": pair.reference, "memory_format": pair.memory_format,
                           "params": ours_params, "reference_params": theirs_params}
    for phase, seconds in (("train", train), ("infer", infer)):
        row[f"{phase}_ms"] = round(1000 * seconds["ours"], 1)
        row[f"{phase}_ms_plain"] = round(1000 * seconds["ours_plain"], 1)
        row[f"{phase}_ms_reference"] = round(1000 * seconds["reference"], 1)
        row[f"{phase}_ratio"] = round(seconds["ours"] / seconds["reference"], 3)
        row[f"{phase}_ratio_plain"] = round(seconds["ours_plain"] / seconds["reference"], 3)
    return row


COLUMNS = (("model", "ours"), ("params", "params"), ("reference_params", "reference params"),
           ("memory_format", "our format"), ("train_ms", "train ms"), ("train_ms_reference", "reference train ms"),
           ("train_ratio", "train ratio"), ("train_ratio_plain", "train ratio, ours plain"),
           ("infer_ms", "infer ms"), ("infer_ms_reference", "reference infer ms"), ("infer_ratio", "infer ratio"),
           ("infer_ratio_plain", "infer ratio, ours plain"))
PAIRS = {"segformer_b0": segformer_pair, "resnet50": resnet_pair}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench/reference.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", nargs="*", choices=tuple(PAIRS), default=list(PAIRS),
                        help="the packaged references to compare (default: all; none with a bare --pairs)")
    parser.add_argument("--official", nargs=2, action="append", default=[], metavar=("NAME", "CLONE"),
                        help="also compare NAME against the official code in the local clone CLONE, repeatable: "
                             + "; ".join(f"{name} ({official.repository})" for name, official in OFFICIAL.items()))
    parser.add_argument("--size", type=parse_size, default=(256, 256), help="input height x width (default 256x256)")
    parser.add_argument("--batch", type=int, default=2, help="images per step")
    parser.add_argument("--classes", type=int, default=19, help="number of classes (default: Cityscapes' 19)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each before timing")
    parser.add_argument("--runs", type=int, default=7, help="timed steps of each (the median is reported)")
    parser.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (default 1)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where every side runs (cuda: cuDNN picks its kernels in the warm-up steps)")
    parser.add_argument("--amp", choices=tuple(AMP_DTYPES), default="off",
                        help="autocast dtype of every side's forward and loss (default off: float32)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows to this JSON file")
    return parser


def main(argv: list[str] | None = None, host_memory: str = "system") -> int:
    """``host_memory``: the allocator setting the process runs with (the script keeps freed memory, as
    an engine process does; a caller's process is left alone)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, clone in args.official:
        if name not in OFFICIAL:
            parser.error(f"--official {name}: no official code is wired for it; choose from {', '.join(OFFICIAL)}")
        official = OFFICIAL[name]
        if not (Path(clone) / official.path).is_file():
            parser.error(f"--official {name} {clone}: {official.path} is not in it (clone {official.repository})")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this torch sees no CUDA device")
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    settings = {"device": device_label(args.device), "amp": args.amp, "host_memory": host_memory,
                "torch": torch.__version__}
    if args.pairs:
        import transformers  # the optional bench requirement: fail here, before any timing

        settings["transformers"] = transformers.__version__
    settings |= {"size": list(args.size), "batch": args.batch, "classes": args.classes, "warmup": args.warmup,
                 "runs": args.runs}
    builders = [lambda name=name: PAIRS[name](args.classes) for name in args.pairs]
    builders += [lambda name=name, clone=clone: official_pair(name, Path(clone), args.classes)
                 for name, clone in args.official]
    print(", ".join(f"{key} {value}" for key, value in settings.items()))
    print(table_header(COLUMNS), flush=True)
    rows = []
    for build in builders:
        torch.manual_seed(0)
        rows.append(measure(build(), args))
        print(table_row(rows[-1], COLUMNS, cell=lambda value: f"{value:,}" if isinstance(value, int) else str(value)),
              flush=True)
    if args.json:
        write_results(args.json, settings, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(host_memory="retain" if retain_freed_memory() else "system"))
