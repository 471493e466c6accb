"""Inference and evaluation shared by the trainer and the CLI (``eval``, ``predict``).

Whole-image inference, or mmsegmentation's slide inference for images larger than the
window (``mmseg/models/segmentors/encoder_decoder.py``, ``slide_inference``: windows
overlap, logits are summed and divided by how many windows covered each pixel; its
Cityscapes configs use a stride of two thirds of the crop, 769/513, which we keep).
"""
from __future__ import annotations

import heapq
import statistics
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from engine.config import RunConfig, upgrade_saved
from engine.data.loaders import pins_memory, resolve_workers, worker_options
from engine.data.transforms import normalize
from engine.methods import build_method
from engine.metrics import ConfusionMatrix, image_scores
from engine.models import SegmentationModel, build_model, compile_model, predicted_classes, resolve_memory_format
from engine.models.folding import fold_batchnorm
from engine.reporting import EvaluationResult, ImageScore, PredictionSample

#: Validation images shown as overlays on the experiment page (the first ones, so the same every time).
PREDICTION_SAMPLES = 4
#: And the evaluation's hardest images (lowest own mIoU), so the page can open the worst cases.
HARDEST_SAMPLES = 4
#: Windows per forward pass in slide inference: bounds memory on large images.
WINDOWS_PER_BATCH = 8
#: Timed forward passes for throughput, after warm-up passes that fill caches and pick kernels.
THROUGHPUT_WARMUP, THROUGHPUT_RUNS = 3, 10
ModuleT = TypeVar("ModuleT", bound=nn.Module)


@dataclass(frozen=True)
class Inference:
    """How to turn an image into logits: whole, or sliding ``crop`` windows; AMP dtype on CUDA;
    the memory format the network's inputs are given in (the network's own, ``prepare_model``)."""

    mode: str = "whole"
    crop: int = 512
    amp_dtype: torch.dtype | None = None
    memory_format: torch.memory_format = torch.contiguous_format

    @classmethod
    def from_config(cls, config: RunConfig, device: torch.device) -> Inference:
        return cls(config.schedule.eval_mode, config.schedule.eval_crop, amp_dtype(config.device.amp, device),
                   resolve_memory_format(config.model.arch, config.device.memory_format))

    def autocast(self, device: torch.device) -> AbstractContextManager:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device.type, dtype=self.amp_dtype)

    def window(self, size: tuple[int, ...]) -> tuple[int, int] | None:
        """The sliding window for an image of ``size``, or None to run it whole."""
        if self.mode == "whole" or max(size) <= self.crop:
            return None
        return min(self.crop, size[0]), min(self.crop, size[1])


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the ``amp`` setting on ``device``, None for float32.

    Only on CUDA: CPU autocast is slower than float32 for these models. ``auto`` takes bf16
    where the GPU computes it natively (``torch.cuda.is_bf16_supported``: Ampere and later),
    whose float32-sized exponent needs no loss scaling, and fp16 otherwise, which the trainer
    pairs with a GradScaler (Micikevicius et al. 2018, arXiv:1710.03740).
    """
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def prepare_model(model: ModuleT, config: RunConfig, device: torch.device) -> ModuleT:
    """``model`` (a network or a method holding several) on ``device`` in the run's memory format,
    its segmentation networks compiled when the run asks for it; returns ``model``.

    Both layouts compute the same function: channels_last reorders each weight once, here, so
    that convolutions read channels contiguously (oneDNN on the CPU, cuDNN's NHWC kernels).
    """
    # Module.to takes memory_format (torch docs); torch's type stubs do not list it.
    model.to(device, memory_format=resolve_memory_format(config.model.arch,  # type: ignore[call-overload]
                                                         config.device.memory_format))
    if config.device.compile:
        for module in model.modules():
            if isinstance(module, SegmentationModel):
                compile_model(module)
    return model


@contextmanager
def inference_network(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` as inference runs it, the network itself left as it was.

    An eval-mode copy with each BatchNorm folded into the convolution before it
    (``engine.models.folding``: the same function, about a tenth less time for the ResNets
    and HRNet on the CPU). A compiled network is used as it is, in eval mode for the
    duration: a copy of it would still call the original's compiled forward, and the
    compiler fuses BatchNorms itself.
    """
    if not any(getattr(module, "_compiled_call_impl", None) is not None for module in model.modules()):
        yield fold_batchnorm(model)
        return
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _starts(length: int, window: int, stride: int) -> list[int]:
    last = max(length - window, 0)
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)  # the last window ends flush with the image
    return starts


def _slide(model: nn.Module, image: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """(1, 3, H, W) -> (1, K, H, W) logits averaged over overlapping windows."""
    height, width = image.shape[-2:]
    boxes = [(top, left) for top in _starts(height, window[0], max(1, window[0] * 2 // 3))
             for left in _starts(width, window[1], max(1, window[1] * 2 // 3))]
    logits = counts = None
    for first in range(0, len(boxes), WINDOWS_PER_BATCH):
        chunk = boxes[first:first + WINDOWS_PER_BATCH]
        crops = torch.cat([image[..., top:top + window[0], left:left + window[1]] for top, left in chunk])
        outputs = model(crops).float()
        if logits is None or counts is None:
            logits = image.new_zeros(1, outputs.shape[1], height, width, dtype=torch.float32)
            counts = image.new_zeros(1, 1, height, width, dtype=torch.float32)
        for output, (top, left) in zip(outputs, chunk, strict=True):
            logits[0, :, top:top + window[0], left:left + window[1]] += output
            counts[..., top:top + window[0], left:left + window[1]] += 1
    assert logits is not None and counts is not None, "every image has at least one window"
    return logits / counts


@torch.no_grad()
def predict_logits(model: nn.Module, image: torch.Tensor, inference: Inference) -> torch.Tensor:
    """(1, 3, H, W) normalised image on the model's device -> (1, K, H, W) float logits."""
    image = image.contiguous(memory_format=inference.memory_format)
    with inference.autocast(image.device):
        window = inference.window(tuple(image.shape[-2:]))
        if window is None:
            return model(image).float()
        return _slide(model, image, window)


def validation_loader(dataset: Dataset, num_workers: int, device: torch.device) -> DataLoader:
    """Unbatched whole images (sizes may differ) for ``device``, read by ``num_workers`` processes
    (``resolve_workers``), page-locked on CUDA."""
    workers = resolve_workers(num_workers, device)
    return DataLoader(dataset, batch_size=None, persistent_workers=workers > 0, **worker_options(workers),
                      pin_memory=pins_memory(device),
                      generator=torch.Generator())  # its seed draw must not advance the training RNG


def validation_input(item: dict, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``ValidationDataset`` item as the network reads it: the (1, 3, H, W) normalised image and
    the (H, W) long mask, on ``device`` (the loader sends uint8; see the dataset)."""
    return (normalize(item["image"][None].to(device, non_blocking=True)),
            item["mask"].to(device, non_blocking=True).long())


def _sample(item: dict, prediction: torch.Tensor) -> PredictionSample:
    return PredictionSample(item["id"], item["image"].clone(), item["mask"].to(torch.uint8),
                            prediction.to(torch.uint8).cpu())


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, num_classes: int, class_names: list[str],
             device: torch.device, inference: Inference, step: int) -> tuple[EvaluationResult, list[PredictionSample]]:
    """Scores over every validation image (one confusion matrix on the device), each image's
    own scores, and the samples: the first ``PREDICTION_SAMPLES`` images, then the
    ``HARDEST_SAMPLES`` others with the lowest own mIoU (a bounded heap: memory stays flat)."""
    confusion = ConfusionMatrix(num_classes, device)
    first: list[PredictionSample] = []
    hardest: list[tuple[float, int, PredictionSample]] = []  # max-heap on mIoU via its negation
    scores: list[ImageScore] = []
    with inference_network(model) as model:
        for position, item in enumerate(loader):
            image, mask = validation_input(item, device)
            prediction = predicted_classes(predict_logits(model, image, inference))[0]
            score = ImageScore(id=item["id"], **image_scores(confusion.update(prediction, mask)))
            scores.append(score)
            if len(first) < PREDICTION_SAMPLES:
                first.append(_sample(item, prediction))
            elif score.miou is not None and HARDEST_SAMPLES:
                entry = (-score.miou, -position)
                if len(hardest) < HARDEST_SAMPLES:
                    heapq.heappush(hardest, (*entry, _sample(item, prediction)))
                elif entry > hardest[0][:2]:
                    heapq.heapreplace(hardest, (*entry, _sample(item, prediction)))
    totals = confusion.scores()
    result = EvaluationResult(
        step=step, miou=totals["miou"], iou=totals["iou"], pixel_accuracy=totals["pixel_accuracy"],
        mean_accuracy=totals["mean_accuracy"], mean_dice=totals["mean_dice"], dice=totals["dice"],
        confusion_matrix=confusion.counts.cpu().tolist(), class_names=list(class_names), images=scores,
    )
    return result, first + [sample for *_, sample in sorted(hardest, reverse=True)]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def measure_throughput(model: nn.Module, image: torch.Tensor, inference: Inference,
                       warmup: int = THROUGHPUT_WARMUP, runs: int = THROUGHPUT_RUNS) -> float:
    """Images/s for one (1, 3, H, W) image on its device: median of timed passes after warm-up."""
    timings = []
    with inference_network(model) as model:
        for i in range(warmup + runs):
            _synchronize(image.device)
            start = time.perf_counter()
            predict_logits(model, image, inference)
            _synchronize(image.device)
            if i >= warmup:
                timings.append(time.perf_counter() - start)
    return 1.0 / statistics.median(timings)


@dataclass
class LoadedModel:
    """A trained network ready for inference, with what a checkpoint says about its classes."""

    model: nn.Module
    config: RunConfig
    class_names: list[str]
    class_colors: list[str]
    step: int
    best_evaluation: dict[str, Any] | None = None  # the run's own best validation scores (EvaluationResult fields)


def load_trained_model(path: str | Path, device: torch.device) -> LoadedModel:
    """Rebuild the run's method from the checkpoint's config and load its weights strictly."""
    state: dict[str, Any] = torch.load(path, map_location=device, weights_only=False)
    config = RunConfig.from_flat(upgrade_saved(state["config"]), require_data=False)
    num_classes = state["num_classes"]

    def model_factory():
        return build_model(config.model.arch, num_classes, **config.model.options)

    method = build_method(config.method.method, model_factory, num_classes, **config.method.options)
    method.load_state_dict(state["method"])
    model = prepare_model(method.eval_model(), config, device).eval()
    return LoadedModel(model, config, list(state["class_names"]), list(state["class_colors"]), state["step"],
                       state.get("best_evaluation"))
