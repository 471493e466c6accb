"""The labelled samples the dataset page overlays in the browser (image + class-index picture).

They are drawn at upload (``ingest.write_sample_pictures``); a dataset uploaded before
that gets them drawn once, the first time its page is shown.
"""
from __future__ import annotations

import json
import logging

from engine.data import DatasetError
from engine.data.preview import SAMPLES_MANIFEST
from webapp.datasets.ingest import disk_usage, samples_path, write_sample_pictures
from webapp.datasets.models import Dataset

logger = logging.getLogger(__name__)


def sample_pictures(dataset: Dataset) -> list[dict]:
    """``[{id, image, labels, width, height}]`` with ``image`` and ``labels`` as URLs; [] if none can be had."""
    manifest = samples_path(dataset.path) / SAMPLES_MANIFEST
    try:
        entries = json.loads(manifest.read_text())
    except FileNotFoundError:
        entries = _draw_for_older_dataset(dataset)
    except (OSError, ValueError):
        logger.exception("the sample list of dataset %s cannot be read", dataset.pk)
        entries = []
    base = dataset.samples_url
    return [{**entry, "image": base + entry["image"], "labels": base + entry["labels"]} for entry in entries]


def _draw_for_older_dataset(dataset: Dataset) -> list[dict]:
    if not dataset.path.is_dir():
        return []
    try:
        entries = write_sample_pictures(dataset.path)
    except DatasetError as error:
        logger.warning("the samples of dataset %s cannot be drawn: %s", dataset.pk, error)
        return []
    Dataset.objects.filter(pk=dataset.pk).update(size_bytes=disk_usage(dataset.path))
    return entries
