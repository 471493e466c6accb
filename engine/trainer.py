"""The training loop, written once for every architecture and method.

Iteration-based (as the SSL papers count), poly learning rate with linear warm-up
(DeepLab's ``(1 - t/T) ** 0.9``), optional AMP on CUDA, periodic evaluation over the
whole validation split, best/last checkpoints that hold everything needed to resume,
and cooperative cancellation through ``reporter.should_stop()``.
"""
from __future__ import annotations

import math
import random
import statistics
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from engine.config import RunConfig
from engine.data import TrainingData, build_training_data
from engine.data.transforms import denormalize
from engine.methods import METHODS, Method, build_method
from engine.metrics import confusion_matrix, segmentation_scores
from engine.models import build_model
from engine.reporting import EvaluationResult, NullReporter, PredictionSample, Reporter, RunResult

#: Validation images shown as overlays on the experiment page.
PREDICTION_SAMPLES = 4
CHECKPOINT_LAST = "last.pt"
CHECKPOINT_BEST = "best.pt"


class TrainingError(RuntimeError):
    """A run that cannot go on; the message says why and how to fix it."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name} was requested but no CUDA GPU is available here; use device=cpu or auto")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def forever(loader: DataLoader) -> Iterator[dict]:
    while True:
        yield from loader


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def poly_lr_lambda(total_steps: int, warmup: int, power: float):
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return (1 - min(step, total_steps - 1) / total_steps) ** power

    return factor


def build_optimizer(config: RunConfig, method: Method) -> torch.optim.Optimizer:
    schedule = config.schedule
    parameters = [p for p in method.optimizer_parameters() if p.requires_grad]
    if schedule.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=schedule.lr, momentum=schedule.momentum, weight_decay=schedule.weight_decay)
    return torch.optim.AdamW(parameters, lr=schedule.lr, weight_decay=schedule.weight_decay)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: TrainingData, device: torch.device, step: int) -> tuple[EvaluationResult, list[PredictionSample]]:
    """Whole-image evaluation over the validation split, one confusion matrix on the device."""
    was_training = model.training
    model.eval()
    num_classes = data.num_classes
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    samples: list[PredictionSample] = []
    for i in range(len(data.validation)):
        item = data.validation[i]
        image = item["image"][None].to(device)
        mask = item["mask"].to(device)
        prediction = model(image).argmax(1)[0]
        confusion += confusion_matrix(prediction, mask, num_classes)
        if i < PREDICTION_SAMPLES:
            samples.append(PredictionSample(item["id"], denormalize(item["image"]), item["mask"].to(torch.uint8),
                                            prediction.to(torch.uint8).cpu()))
    model.train(was_training)
    scores = segmentation_scores(confusion)
    result = EvaluationResult(
        step=step, miou=scores["miou"], iou=scores["iou"], pixel_accuracy=scores["pixel_accuracy"],
        mean_accuracy=scores["mean_accuracy"], mean_dice=scores["mean_dice"], dice=scores["dice"],
        confusion_matrix=confusion.cpu().tolist(), class_names=list(data.index.class_names),
    )
    return result, samples


@torch.no_grad()
def measure_throughput(model: torch.nn.Module, size: tuple[int, int], device: torch.device, batch: int = 1,
                       warmup: int = 3, runs: int = 10) -> float:
    """Images/s: median of timed batches after warm-up, with device synchronisation."""
    was_training = model.training
    model.eval()
    x = torch.randn(batch, 3, *size, device=device)
    timings = []
    for i in range(warmup + runs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            timings.append(time.perf_counter() - start)
    model.train(was_training)
    return batch / statistics.median(timings)


def _save(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a crash mid-save never leaves a torn checkpoint


def train(config: RunConfig, reporter: Reporter | None = None, output_dir: str | Path | None = None,
          resume: bool = True) -> RunResult:
    reporter = reporter or NullReporter()
    device = resolve_device(config.device.device)
    schedule = config.schedule
    seed_everything(config.budget.seed)
    torch.use_deterministic_algorithms(config.device.deterministic, warn_only=True)

    uses_unlabeled = METHODS.get(config.method.method).factory.uses_unlabeled
    data = build_training_data(
        config.data.data, labeled=config.budget.labeled, seed=config.budget.seed, crop_size=config.data.crop_size,
        batch_size=schedule.batch_size, unlabeled_batch_size=schedule.unlabeled_batch_size or schedule.batch_size,
        num_workers=config.data.num_workers, need_unlabeled=uses_unlabeled, val_fraction=config.data.val_fraction,
    )

    def model_factory():
        return build_model(config.model.arch, data.num_classes, **config.model.options)

    method = build_method(config.method.method, model_factory, data.num_classes, **config.method.options).to(device)
    optimizer = build_optimizer(config, method)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, poly_lr_lambda(schedule.iters, schedule.warmup_iters, schedule.poly_power))
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.device.amp)
    use_amp = amp_dtype is not None and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    out = Path(output_dir) if output_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    start_step, best_miou = 0, -1.0
    if out and resume and (out / CHECKPOINT_LAST).exists():
        state = torch.load(out / CHECKPOINT_LAST, map_location=device, weights_only=False)
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_step, best_miou = state["step"], state["best_miou"]

    labeled_batches = forever(data.labeled)
    unlabeled_batches = forever(data.unlabeled) if data.unlabeled is not None else None
    method.train()
    sums: dict[str, float] = {}
    count = 0
    best = last = None
    stopped = False
    step = start_step
    eval_every = schedule.evaluation_interval
    while step < schedule.iters:
        if reporter.should_stop():
            stopped = True
            break
        labeled = to_device(next(labeled_batches), device)
        unlabeled = to_device(next(unlabeled_batches), device) if unlabeled_batches else None
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            losses = method.training_step(labeled, unlabeled, step, schedule.iters)
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise TrainingError(f"the loss became {loss.item()} at iteration {step + 1}; lower the learning rate "
                                f"(lr={schedule.lr}) or enable gradient clipping")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if schedule.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(list(method.optimizer_parameters()), schedule.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        method.after_optimizer_step(step, schedule.iters)
        step += 1
        for name, value in losses.items():
            sums[name] = sums.get(name, 0.0) + float(value.detach())
        count += 1
        if step % schedule.log_every == 0 or step == schedule.iters:
            metrics = {name: total / count for name, total in sums.items()}
            metrics["lr"] = optimizer.param_groups[0]["lr"]
            reporter.log_metrics(step, metrics)
            sums, count = {}, 0
        if step % eval_every == 0 or step == schedule.iters:
            last, samples = evaluate(method.eval_model(), data, device, step)
            final = step == schedule.iters
            if final:
                size = tuple(data.validation[0]["image"].shape[-2:])
                last.throughput = measure_throughput(method.eval_model(), size, device)
            reporter.log_evaluation(step, last)
            reporter.log_predictions(step, samples)
            is_best = last.miou > best_miou
            if is_best:
                best_miou, best = last.miou, last
            if out:
                state = {
                    "method": method.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                    "step": step, "best_miou": best_miou, "config": config.to_flat(),
                    "num_classes": data.num_classes, "class_names": data.index.class_names,
                }
                _save(out / CHECKPOINT_LAST, state)
                reporter.log_checkpoint(str(out / CHECKPOINT_LAST), step, False)
                if is_best:
                    _save(out / CHECKPOINT_BEST, state)
                    reporter.log_checkpoint(str(out / CHECKPOINT_BEST), step, True)
    return RunResult(steps=step, stopped=stopped, best=best, last=last,
                     checkpoint=str(out / CHECKPOINT_LAST) if out else None)
