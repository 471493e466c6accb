"""The training loop, written once for every architecture and method.

Iteration-based (as the semi-supervised papers count), SGD or AdamW, poly learning rate
with linear warm-up (DeepLab's ``(1 - t/T) ** 0.9``), optional AMP on CUDA (a GradScaler
for fp16), gradient clipping, periodic evaluation over the whole validation split,
best/last checkpoints that hold everything needed to resume, and cooperative
cancellation through ``reporter.should_stop()``.

Resume is exact: a run stopped at step N and resumed ends with the same weights as an
uninterrupted one (``tests/engine/test_resume.py``, CPU, ``deterministic=true``). The data
order and augmentations come from ``engine.sampling`` (a function of seed and step, for
any number of workers) and the checkpoint holds the optimiser, scaler, schedule and the
python, numpy, torch and CUDA RNG states.

With ``gpus`` > 1, ``train`` runs in that many processes (``engine.distributed``,
docs/distributed.md): each trains on its slice of every global batch under
DistributedDataParallel, rank 0 alone reports, evaluates and writes the checkpoints, which
hold the unwrapped networks (the format of a one-process run) and every rank's RNG states.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from engine import distributed
from engine.config import RunConfig, upgrade_saved
from engine.data import DatasetError, DatasetInfo, TrainingData, build_training_data
from engine.data.loaders import LabeledDataset, UnlabeledDataset, pins_memory, resolve_workers, training_loader
from engine.evaluation import (
    Inference,
    evaluate,
    measure_throughput,
    prepare_model,
    validation_input,
    validation_loader,
)
from engine.methods import METHODS, Method, build_method
from engine.models import build_model
from engine.reporting import EvaluationResult, NullReporter, Reporter, RunResult
from engine.sampling import LABELED_STREAM, UNLABELED_STREAM, derive_seed

CHECKPOINT_LAST = "last.pt"
CHECKPOINT_BEST = "best.pt"
#: Config fields a resumed run may change: they do not alter what the checkpoint's state means.
RESUMABLE_CHANGES = frozenset({"data", "iters", "eval_every", "log_every", "eval_mode", "eval_crop",
                               "num_workers", "device", "amp", "memory_format", "compile", "gpus"})
#: Largest factor of the training-time random rescale (UniMatch's 0.5-2.0, engine.data.transforms).
MAX_AUGMENTATION_SCALE = 2.0


class TrainingError(RuntimeError):
    """A run that cannot go on; the message says why and how to fix it, ``field`` which setting."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field

    def __reduce__(self):  # crosses from a training process to the one that launched it with its field
        return type(self), (str(self), self.field)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"device {name} was requested but no CUDA GPU is available here; "
                                "use device=cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TrainingError(f"device {name} was requested but this machine has {torch.cuda.device_count()} "
                                f"CUDA GPU(s): cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def poly_lr_lambda(total_steps: int, warmup: int, power: float):
    """Learning-rate factor: linear warm-up to 1, then DeepLab's poly decay ``(1 - t/T) ** power``."""
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return (1 - min(step, total_steps - 1) / total_steps) ** power

    return factor


#: Where SGD and AdamW run torch's fused kernels: one pass over each parameter, its gradient and its
#: state instead of one per operation. Fused kernels round differently from the per-parameter loop
#: (by up to about 1e-7 a step), which a long run amplifies: on the CPU the loop stays, so that a
#: CPU run still ends on the same last digits as the stored ones (bench/results/ssl.json, pinned
#: kernels in bench/kernels.py). On the CPU, where it was measured (bench/optimizer.py,
#: docs/benchmarks.md), fused SGD took 23.2 ms instead of 53.4 for DeepLabV3+-R50's parameters
#: and fused AdamW 38.0 instead of 197.2; on a GPU the loop also launches several kernels per
#: parameter tensor, which fusing removes.
FUSED_OPTIMIZER_DEVICES = ("cuda",)


def build_optimizer(config: RunConfig, method: Method) -> torch.optim.Optimizer:
    schedule = config.schedule
    parameters = [p for p in method.optimizer_parameters() if p.requires_grad]
    fused = all(p.device.type in FUSED_OPTIMIZER_DEVICES and p.is_floating_point() for p in parameters)
    if schedule.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=schedule.lr, momentum=schedule.momentum,
                               weight_decay=schedule.weight_decay, fused=fused)
    return torch.optim.AdamW(parameters, lr=schedule.lr, weight_decay=schedule.weight_decay, fused=fused)


class DivergenceCheck:
    """Refuses a run whose loss stopped being finite, naming the first iteration where it did.

    The losses are read on the host only where the trainer reads values anyway (logging,
    evaluation, checkpoints, a failed step), not after every step: on a GPU an ``isfinite``
    test per step waits for the device and stalls the queue of kernels (issue 22). A
    diverged run trains on for at most ``log_every`` steps before the error.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[int, torch.Tensor]] = []  # (step, loss) since the last check

    def add(self, step: int, loss: torch.Tensor) -> None:
        self.pending.append((step, loss))

    def check(self, config: RunConfig) -> None:
        if not self.pending:
            return
        steps, losses = zip(*self.pending, strict=True)
        self.pending = []
        values = torch.stack([loss.float() for loss in losses]).tolist()  # one read for all of them
        for step, value in zip(steps, values, strict=True):
            if not np.isfinite(value):
                raise TrainingError(f"the loss became {value} at iteration {step + 1:,}; lower the learning rate "
                                    f"(lr={config.schedule.lr}) or enable gradient clipping (grad_clip)")


@dataclass
class Run:
    """One run's objects; ``checkpoint_state`` and ``restore`` are its checkpoint format."""

    config: RunConfig
    device: torch.device
    data: TrainingData
    method: Method
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    inference: Inference
    out: Path | None
    training_step: Callable[..., dict[str, torch.Tensor]]  # the method's, under DDP with several processes
    step: int = 0
    best: EvaluationResult | None = None
    last: EvaluationResult | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    divergence: DivergenceCheck = field(default_factory=DivergenceCheck)

    @property
    def best_miou(self) -> float:
        return self.best.miou if self.best else -1.0

    def checkpoint_state(self) -> dict[str, Any]:
        """On every rank (it gathers their RNG states); only rank 0 writes it."""
        rng = distributed.all_gather(_rng_states())
        return {
            "step": self.step,
            "config": self.config.to_flat(),
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng[0],
            **({"rng_per_rank": rng} if len(rng) > 1 else {}),
            "best_evaluation": self.best.without_images().to_dict() if self.best else None,
            "num_classes": self.data.num_classes,
            "class_names": list(self.data.index.class_names),
            "class_colors": list(self.data.index.class_colors),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.method.load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = state["step"]
        self.best = EvaluationResult(**state["best_evaluation"]) if state["best_evaluation"] else None
        per_rank = state.get("rng_per_rank") or [state["rng"]]
        _set_rng_states(per_rank[distributed.rank() % len(per_rank)])  # same ranks: exact; other counts: reused


def _rng_states() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _build_data(config: RunConfig, info: DatasetInfo | None = None) -> TrainingData:
    try:
        return build_training_data(
            config.data.data, labeled=config.budget.labeled, seed=config.budget.seed, crop_size=config.data.crop_size,
            need_unlabeled=METHODS.get(config.method.method).factory.uses_unlabeled,
            val_fraction=config.data.val_fraction, scale_range=(config.data.min_scale, config.data.max_scale),
            strong_blur=config.data.strong_blur, info=info,
        )
    except DatasetError:
        raise  # keeps its per-file ``errors`` list for the upload page
    except ValueError as error:  # label budget or unlabelled pool that this dataset cannot give
        raise TrainingError(str(error), "labeled") from None


def check_fits(config: RunConfig, info: DatasetInfo | None = None) -> None:
    """Everything a run's start checks about its dataset, without building a model: so that
    a launch is refused with the same message a worker would fail with."""
    _check_fits(config, _build_data(config, info))


def _check_fits(config: RunConfig, data: TrainingData) -> None:
    """Refuse batches, crops and splits that the dataset cannot fill, naming the numbers."""
    schedule, budget, gpus = config.schedule, config.budget, config.device.gpus
    labeled = len(data.labeled)
    per_gpus = f" x gpus {gpus}" if gpus > 1 else ""  # each process takes its own batch of a global one
    if schedule.batch_size * gpus > labeled:
        raise TrainingError(f"batch_size {schedule.batch_size}{per_gpus} is larger than the {labeled} labelled "
                            f"training images of the label budget {budget.labeled}; "
                            f"use batch_size <= {labeled // gpus} or a larger budget", "batch_size")
    if data.unlabeled is not None:
        unlabeled_batch = schedule.unlabeled_batch_size or schedule.batch_size
        pool = len(data.unlabeled)
        if unlabeled_batch * gpus > pool:
            raise TrainingError(f"unlabeled_batch_size {unlabeled_batch} (0 means batch_size){per_gpus} is larger than "
                                f"the {pool} unlabelled training images; use unlabeled_batch_size <= {pool // gpus}",
                                "unlabeled_batch_size")
    if len(data.validation) == 0:
        raise TrainingError("the validation split is empty: the dataset needs at least two images with masks "
                            "(or a splits/val.txt)", "val_fraction")
    largest = max(_largest_side(data, sample_id) for sample_id in data.budget.labeled_ids)
    if config.data.crop_size > MAX_AUGMENTATION_SCALE * largest:
        raise TrainingError(f"crop_size {config.data.crop_size} is more than {MAX_AUGMENTATION_SCALE:g}x the largest "
                            f"labelled image side ({largest} px): crops would be mostly padding; "
                            f"use crop_size <= {int(MAX_AUGMENTATION_SCALE * largest)}", "crop_size")


def _largest_side(data: TrainingData, sample_id: str) -> int:
    with Image.open(data.index.by_id[sample_id].image) as image:  # reads the header only
        return max(image.size)


def _build_run(config: RunConfig, output_dir: str | Path | None) -> Run:
    device = distributed.local_device(resolve_device(config.device.device))
    seed_everything(config.budget.seed)
    torch.use_deterministic_algorithms(config.device.deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = device.type == "cuda" and not config.device.deterministic
    data = _build_data(config)
    _check_fits(config, data)

    def model_factory():
        return build_model(config.model.arch, data.num_classes, **config.model.options)

    method = prepare_model(build_method(config.method.method, model_factory, data.num_classes, **config.method.options),
                           config, device)
    optimizer = build_optimizer(config, method)
    if distributed.world_size() > 1:  # same initial weights everywhere, its own dropout and mixing draws per rank
        seed_everything(derive_seed(config.budget.seed, distributed.rank()))
    schedule = config.schedule
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, poly_lr_lambda(schedule.iters, schedule.warmup_iters, schedule.poly_power))
    inference = Inference.from_config(config, device)
    scaler = torch.amp.GradScaler("cuda", enabled=inference.amp_dtype == torch.float16)
    out = Path(output_dir) if output_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    return Run(config, device, data, method, optimizer, scheduler, scaler, inference, out,
               distributed.data_parallel(method, device))


def _resume(run: Run, path: Path) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)  # RNG states must stay on the CPU
        if not isinstance(state, dict) or "config" not in state:
            raise ValueError("it holds no SegLab training state")
    except Exception as error:  # a torn copy, another program's file: unpickling raises many kinds
        raise TrainingError(f"the checkpoint {CHECKPOINT_LAST} of this run cannot be read ({error.__class__.__name__}: "
                            f"{str(error)[:200]}); delete it to train from the start") from None
    saved, current = upgrade_saved(state["config"]), run.config.to_flat()
    changed = sorted(name for name in set(saved) | set(current)
                     if name not in RESUMABLE_CHANGES and saved.get(name) != current.get(name))
    if changed:
        differences = ", ".join(f"{name}: {saved.get(name)!r} -> {current.get(name)!r}" for name in changed)
        raise TrainingError(f"{run.out} holds a checkpoint of a different run ({differences}); "
                            "choose another output directory or start over without resuming")
    if state["num_classes"] != run.data.num_classes:
        raise TrainingError(f"{path} was trained for {state['num_classes']} classes but the dataset has "
                            f"{run.data.num_classes}; choose another output directory")
    run.restore(state)


def _device_batches(dataset: LabeledDataset | UnlabeledDataset, batch_size: int, stream: int,
                    run: Run) -> Iterator[dict]:
    """``dataset``'s batches from step ``run.step`` on, each on the run's device as the batch contract
    (the loader's workers start now, not at the first batch)."""
    build = training_loader if distributed.world_size() == 1 else distributed.sharded_training_loader
    loader = build(dataset, batch_size, seed=run.config.budget.seed, stream=stream, start_step=run.step,
                   num_workers=resolve_workers(run.config.data.num_workers, run.device, distributed.world_size()),
                   pin_memory=pins_memory(run.device))
    return (_to_device(batch, run.device, run.inference.memory_format, dataset.finish) for batch in loader)


def _to_device(batch: dict, device: torch.device, memory_format: torch.memory_format,
               finish: Callable[[dict, dict], dict]) -> dict:
    """A loader's batch on ``device``, made into the batch contract there by its dataset's ``finish``
    (``engine.data.loaders``); images (4-d) in the network's memory format, so its first layer
    needs no reorder."""
    def move(value: Any) -> Any:
        if not isinstance(value, torch.Tensor):
            return value
        if value.dim() == 4:
            return value.to(device, non_blocking=True, memory_format=memory_format)
        return value.to(device, non_blocking=True)

    finished = finish({key: move(value) for key, value in batch.items()}, batch)
    return {key: value.contiguous(memory_format=memory_format) if isinstance(value, torch.Tensor) and value.dim() == 4
            else value for key, value in finished.items()}


def _batches(run: Run) -> Iterator[tuple[dict, dict | None]]:
    """(labelled, unlabelled or None) batches on the device, from step ``run.step`` on."""
    schedule = run.config.schedule
    labeled = _device_batches(run.data.labeled, schedule.batch_size, LABELED_STREAM, run)
    unlabeled = None
    if run.data.unlabeled is not None:
        unlabeled = _device_batches(run.data.unlabeled, schedule.unlabeled_batch_size or schedule.batch_size,
                                    UNLABELED_STREAM, run)
    while True:
        yield next(labeled), next(unlabeled) if unlabeled is not None else None


def _optimisation_step(run: Run, labeled: dict, unlabeled: dict | None) -> dict[str, torch.Tensor]:
    schedule = run.config.schedule
    with run.inference.autocast(run.device):
        losses = run.training_step(labeled, unlabeled, run.step, schedule.iters)
    loss = losses["loss"]
    run.divergence.add(run.step, loss.detach())
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if schedule.grad_clip:
        run.scaler.unscale_(run.optimizer)  # clip the true gradients, not the fp16-scaled ones
        torch.nn.utils.clip_grad_norm_(run.method.optimizer_parameters(), schedule.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    run.method.after_optimizer_step(run.step, schedule.iters)
    return {name: value.detach() for name, value in losses.items()}


def _train_one_step(run: Run, labeled: dict, unlabeled: dict | None) -> dict[str, torch.Tensor]:
    try:
        return _optimisation_step(run, labeled, unlabeled)
    except torch.OutOfMemoryError:
        raise TrainingError(
            f"CUDA out of memory at iteration {run.step + 1:,} (batch {run.config.schedule.batch_size}, "
            f"crop {run.config.data.crop_size}); lower batch_size or crop_size, or set amp=bf16") from None
    except RuntimeError:
        run.divergence.check(run.config)  # weights made NaN by an earlier step fail in odd places: name that step
        raise


class LossMeter:
    """Means of the named values since the last report, summed on the device (no sync per step).

    Each name has its own count: a diagnostic a method has no value for in some steps (no
    trusted pixel with a known hidden label: NaN) is averaged over the steps that had it,
    and a name no step had is left out.
    """

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for name, value in losses.items():
            value = value.float()
            present = ~value.isnan()
            value = torch.where(present, value, 0.0)
            self.sums[name] = self.sums[name] + value if name in self.sums else value
            self.counts[name] = self.counts[name] + present if name in self.counts else present.long()

    def flush(self) -> dict[str, float]:
        """The means over every process's steps (one gather when several train the run)."""
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        local = {name: (float(total), int(self.counts[name])) for name, total in self.sums.items()}
        for part in distributed.all_gather(local):
            for name, (total, count) in part.items():
                sums[name], counts[name] = sums.get(name, 0.0) + total, counts.get(name, 0) + count
        self.sums, self.counts = {}, {}
        return {name: total / counts[name] for name, total in sums.items() if counts[name]}


def _save_checkpoints(run: Run, reporter: Reporter, is_best: bool) -> None:
    if run.out is None:
        return
    state = run.checkpoint_state()
    if not distributed.is_main():
        return
    for name, write in ((CHECKPOINT_LAST, True), (CHECKPOINT_BEST, is_best)):
        if write:
            path = run.out / name
            temporary = path.with_suffix(".tmp")
            torch.save(state, temporary)
            temporary.replace(path)  # atomic: a crash mid-save never leaves a torn checkpoint
            reporter.log_checkpoint(str(path), run.step, name == CHECKPOINT_BEST)


def _evaluate(run: Run, reporter: Reporter, loader: DataLoader, final: bool) -> None:
    """Score the evaluated model on rank 0, report it, and checkpoint (best when mIoU improved);
    the other ranks wait for rank 0 in the checkpoint's gather."""
    is_best = _score(run, reporter, loader, final) if distributed.is_main() else False
    _save_checkpoints(run, reporter, is_best)


def _score(run: Run, reporter: Reporter, loader: DataLoader, final: bool) -> bool:
    model, schedule = run.method.eval_model(), run.config.schedule
    try:
        result, samples = evaluate(model, loader, run.data.num_classes, run.data.index.class_names, run.device,
                                   run.inference, run.step)
        if final:
            image, _ = validation_input(run.data.validation[0], run.device)
            result.throughput = measure_throughput(model, image, run.inference)
    except torch.OutOfMemoryError:
        raise TrainingError(f"CUDA out of memory while evaluating at iteration {run.step:,} (eval_mode "
                            f"{schedule.eval_mode}, eval_crop {schedule.eval_crop}); use eval_mode=sliding "
                            "with a smaller eval_crop") from None
    reporter.log_evaluation(run.step, result)
    reporter.log_predictions(run.step, samples)
    is_best = result.miou > run.best_miou
    if is_best:
        run.best = result
    run.last = result
    return is_best


def _loop(run: Run, reporter: Reporter) -> bool:
    """Train until ``iters`` or until the reporter asks to stop; True when it stopped early."""
    schedule = run.config.schedule
    batches = _batches(run)
    validation = validation_loader(run.data.validation, run.config.data.num_workers, run.device)
    meter = LossMeter()
    run.method.train()
    while run.step < schedule.iters:
        if distributed.broadcast_flag(reporter.should_stop()):  # rank 0's reporter decides for every rank
            run.divergence.check(run.config)
            _save_checkpoints(run, reporter, is_best=False)
            return True
        learning_rate = run.optimizer.param_groups[0]["lr"]
        meter.add(_train_one_step(run, *next(batches)))
        run.step += 1
        if run.step % schedule.log_every == 0 or run.step == schedule.iters:
            run.divergence.check(run.config)
            run.metrics = {**meter.flush(), "lr": learning_rate}
            reporter.log_metrics(run.step, run.metrics)
        if run.step % schedule.evaluation_interval == 0 and run.step < schedule.iters:
            run.divergence.check(run.config)  # never score or checkpoint diverged weights
            _evaluate(run, reporter, validation, final=False)
    run.divergence.check(run.config)
    _evaluate(run, reporter, validation, final=True)
    return False


def train(config: RunConfig, reporter: Reporter | None = None, output_dir: str | Path | None = None,
          resume: bool = True) -> RunResult:
    """Train ``config``, reporting through ``reporter``; resume from ``output_dir``/last.pt when present.

    With ``config.device.gpus`` > 1 it trains in that many processes and returns rank 0's
    result; ``reporter`` stays in this process and hears only rank 0.
    Raises ``TrainingError`` (or ``engine.data.DatasetError``) with a message for the user.
    """
    reporter = reporter or NullReporter()
    gpus = config.device.gpus
    if gpus > 1 and not distributed.is_distributed():
        device = resolve_device(config.device.device)
        if device.type == "cuda" and torch.cuda.device_count() < gpus:
            raise TrainingError(f"gpus {gpus} was requested but this machine shows {torch.cuda.device_count()} CUDA "
                                "GPU(s); lower gpus or give the run more GPUs (CUDA_VISIBLE_DEVICES)", "gpus")
        return distributed.launch(_train_process, gpus, reporter, config, output_dir, resume)
    return _train(config, reporter, output_dir, resume)


def _train_process(reporter: Reporter, config: RunConfig, output_dir: str | Path | None, resume: bool) -> RunResult:
    """One of the run's processes (``engine.distributed.launch`` set its rank)."""
    with distributed.process_group(resolve_device(config.device.device)):
        return _train(config, reporter, output_dir, resume)


def _train(config: RunConfig, reporter: Reporter, output_dir: str | Path | None, resume: bool) -> RunResult:
    run = _build_run(config, output_dir)
    if resume and run.out and (run.out / CHECKPOINT_LAST).exists():
        _resume(run, run.out / CHECKPOINT_LAST)
    stopped = _loop(run, reporter)
    return RunResult(
        steps=run.step, stopped=stopped, best=run.best, last=run.last, metrics=run.metrics,
        checkpoint=str(run.out / CHECKPOINT_LAST) if run.out else None,
        best_checkpoint=str(run.out / CHECKPOINT_BEST) if run.out and run.best else None,
    )
