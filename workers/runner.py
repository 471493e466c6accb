"""One attempt of one run, inside the run's own training process (``python -m workers.child run ID ATTEMPT``).

Plain functions, tested without Celery. The outcome is recorded here through the
lifecycle (succeeded, failed, cancelled, or interrupted when the worker is shutting
down); only a process that dies without saying goes to the supervisor, as a crash.

A run with ``gpus`` > 1 needs nothing more here: the engine trains it in one process per GPU
(``engine.distributed``) and serves rank 0's reporter calls in this process, so the database
connection, the cancel flag and the worker's shutdown stay where they are.
"""
from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from engine.config import RunConfig
from engine.data import DatasetError, load_index, split_label_budget
from engine.trainer import TrainingError, resolve_device, train
from webapp.experiments import lifecycle
from webapp.experiments.models import Experiment
from workers.reporter import DatabaseReporter

ROOT = Path(__file__).resolve().parent.parent


def engine_config(experiment: Experiment) -> RunConfig:
    return RunConfig.from_flat({**experiment.config, "data": str(experiment.dataset.path)})


def describe_device(name: str, gpus: int = 1) -> dict:
    """What the run trains on, for its page; CUDA is initialised here, never in the worker.

    A run on several GPUs reads "2 x cuda NVIDIA H200": the engine trains it in one process per
    GPU (docs/distributed.md), which share the CPU's threads.
    """
    device = resolve_device(name)
    processes = f"{gpus} x " if gpus > 1 else ""
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        return {"device_name": f"{processes}{device} {properties.name}",
                "device_memory_mb": properties.total_memory // 2**20}
    threads = max(1, torch.get_num_threads() // gpus)
    return {"device_name": f"{processes}cpu {platform.machine()} ({threads} threads)", "device_memory_mb": None}


def seglab_version() -> str:
    """The git commit of the code that trains (with +dirty for local changes), else the package version."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True, timeout=5)
        if commit.returncode == 0:
            return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return "seglab " + importlib.metadata.version("seglab")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def environment(config: RunConfig, device: dict) -> dict:
    """What the run's page and a clone need to reproduce it; the labelled ids come from the
    same deterministic split the trainer draws (``split_label_budget``)."""
    index = load_index(config.data.data)
    budget = split_label_budget(index, config.budget.labeled, config.budget.seed, config.data.val_fraction)
    return {"seglab": seglab_version(), "torch": torch.__version__, "python": platform.python_version(),
            "device": device["device_name"], "seed": config.budget.seed, "labeled_ids": budget.labeled_ids,
            "num_unlabeled": len(budget.unlabeled_ids), "num_validation": len(budget.val_ids)}


def describe_error(error: BaseException, experiment: Experiment) -> str:
    """The message the page shows; out-of-memory names the settings that caused it."""
    config = experiment.config
    if isinstance(error, torch.OutOfMemoryError):
        step = Experiment.objects.filter(pk=experiment.pk).values_list("current_step", flat=True).first() or 0
        return (f"CUDA out of memory at iteration {step:,} (batch {config.get('batch_size')}, crop "
                f"{config.get('crop_size')}); lower batch_size or crop_size")
    if isinstance(error, DatasetError):
        return f"dataset problem: {error}"
    if isinstance(error, TrainingError):
        return str(error)
    return f"{error.__class__.__name__}: {error}"


def run(experiment: Experiment, attempt: int, interrupted: Callable[[], bool] = lambda: False) -> str:
    """Train ``attempt`` of ``experiment``; returns the outcome it recorded."""
    reporter = DatabaseReporter(experiment, attempt, interrupted)
    try:
        if not experiment.dataset.path.is_dir():
            raise DatasetError([("", f"the files of dataset {experiment.dataset.name!r} are gone from the server's "
                                     "storage; upload it again")])
        config = engine_config(experiment)
        device = describe_device(config.device.device, config.device.gpus)
        lifecycle.beat(experiment.pk, attempt, environment=environment(config, device), **device)
        result = train(config, reporter, output_dir=experiment.output_dir)
        reporter.close()
    except Exception as error:  # everything a run raises becomes data on its page
        reporter.flush_quietly()
        lifecycle.fail(experiment.pk, describe_error(error, experiment), attempt, traceback.format_exc())
        return "failed"
    if result.stopped and interrupted():
        lifecycle.interrupt(experiment.pk, attempt,
                            f"the worker stopped at step {result.steps}; queued again to resume")
        return "interrupted"
    if result.stopped:
        lifecycle.cancelled(experiment.pk, attempt, f"stopped at step {result.steps} as asked")
        return "cancelled"
    last = result.last
    lifecycle.succeed(experiment.pk, attempt, f"final mIoU {100 * last.miou:.1f}" if last else "finished",
                      current_step=result.steps, final_miou=last.miou if last else None,
                      throughput=last.throughput if last else None)
    return "succeeded"
