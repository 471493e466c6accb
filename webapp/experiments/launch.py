"""Launching a run: validate the config with the engine's schema, store it, enqueue it."""
from __future__ import annotations

from typing import Any

from django.db import transaction

from engine.config import ConfigError, RunConfig
from webapp.celery import app as celery_app
from webapp.datasets.models import Dataset
from webapp.experiments.models import Experiment, ExperimentEvent

RUN_TASK = "workers.run_experiment"


def validate_config(dataset: Dataset, values: dict[str, Any]) -> dict[str, Any]:
    """The engine's validated flat config, without the data path (the dataset row holds it)."""
    if "data" in values:
        raise ConfigError({"data": "set by the chosen dataset; leave it out"})
    config = RunConfig.from_flat({**values, "data": str(dataset.path)})
    flat = config.to_flat()
    del flat["data"]
    return flat


def queue_for(config: dict[str, Any]) -> str:
    return "cpu" if config.get("device") == "cpu" else "gpu"


def default_name(dataset: Dataset, config: dict[str, Any]) -> str:
    return f"{config['arch']} {config['method']} {config['labeled']} on {dataset.name} (seed {config['seed']})"


def launch_experiment(dataset: Dataset, values: dict[str, Any], user=None, name: str = "") -> Experiment:
    """Raises ConfigError (field -> message) and stores nothing when the config is invalid."""
    config = validate_config(dataset, values)
    with transaction.atomic():
        experiment = Experiment.objects.create(
            team=dataset.team, dataset=dataset, name=name or default_name(dataset, config), config=config,
            queue=queue_for(config), total_steps=config["iters"], created_by=user,
        )
        ExperimentEvent.objects.create(experiment=experiment, kind="queued", message=f"on the {experiment.queue} queue")
        transaction.on_commit(lambda: enqueue(experiment))
    return experiment


def enqueue(experiment: Experiment) -> None:
    celery_app.send_task(RUN_TASK, args=[experiment.pk], queue=experiment.queue)


def request_cancel(experiment: Experiment) -> None:
    """Cooperative: a queued run is cancelled at once, a running one at its next step."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.is_finished:
            return
        if experiment.status == Experiment.Status.QUEUED:
            experiment.status = Experiment.Status.CANCELLED
            experiment.save(update_fields=["status"])
            ExperimentEvent.objects.create(experiment=experiment, kind="cancelled", message="cancelled before it started")
        else:
            experiment.cancel_requested = True
            experiment.save(update_fields=["cancel_requested"])
            ExperimentEvent.objects.create(experiment=experiment, kind="cancel-requested")
