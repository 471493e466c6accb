"""Launching a run: validate the config with the engine's schema, then queue it (``lifecycle``)."""
from __future__ import annotations

from typing import Any

from engine.config import ConfigError, RunConfig
from engine.data import DatasetError, DatasetInfo
from engine.trainer import TrainingError, check_fits
from webapp.datasets.models import Dataset
from webapp.experiments import lifecycle
from webapp.experiments.models import Experiment


def validate_config(dataset: Dataset, values: dict[str, Any]) -> dict[str, Any]:
    """The engine's validated flat config, without the data path (the dataset row holds it).

    The dataset is asked too, as the worker would at the run's start: a label budget, a
    batch or a crop it cannot fill is refused here, with the engine's message, and never
    reaches a worker.
    """
    if "data" in values:
        raise ConfigError({"data": "set by the chosen dataset; leave it out"})
    config = RunConfig.from_flat({**values, "data": str(dataset.path)})
    try:
        check_fits(config, DatasetInfo.from_dict(dataset.info) if dataset.info else None)
    except TrainingError as error:  # a budget, batch or crop this dataset cannot fill
        raise ConfigError({error.field or "labeled": str(error)}) from None
    except DatasetError as error:
        raise ConfigError({"dataset": str(error)}) from None
    flat = config.to_flat()
    del flat["data"]
    return flat


def queue_for(config: dict[str, Any]) -> str:
    return "cpu" if config.get("device") == "cpu" else "gpu"


def default_name(dataset: Dataset, config: dict[str, Any]) -> str:
    return f"{config['arch']} {config['method']} {config['labeled']} on {dataset.name} (seed {config['seed']})"


def queue_run(dataset: Dataset, config: dict[str, Any], user=None, name: str = "", sweep=None) -> Experiment:
    """Queue a run whose config ``validate_config`` returned (a sweep validates all its runs first)."""
    return lifecycle.create_queued(team=dataset.team, dataset=dataset, name=name or default_name(dataset, config),
                                   config=config, queue=queue_for(config), total_steps=config["iters"], created_by=user,
                                   sweep=sweep)


def launch_experiment(dataset: Dataset, values: dict[str, Any], user=None, name: str = "", sweep=None) -> Experiment:
    """Raises ConfigError (field -> message) and stores nothing when the config is invalid."""
    return queue_run(dataset, validate_config(dataset, values), user, name, sweep)
