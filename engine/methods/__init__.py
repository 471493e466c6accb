"""Semi-supervised methods behind one registry: ``build_method(name, model_factory, ...)``.

One file per method registers it with ``@register_method``; importing this package
imports them all.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.methods.base import Method
from engine.methods.registry import METHODS, register_method
from engine.models.base import SegmentationModel
from engine.options import clean_options

# Importing a method file registers it; this order is the catalogue's (baseline first), not isort's.
# isort: off
from engine.methods import supervised  # noqa: E402,F401,I001
from engine.methods import mean_teacher, cutmix, classmix, cct  # noqa: E402,F401
from engine.methods import fixmatch, cps, self_training  # noqa: E402,F401
from engine.methods import adversarial, contrastive, unimatch  # noqa: E402,F401
# isort: on

__all__ = ["METHODS", "Method", "build_method", "list_methods", "register_method"]


def build_method(name: str, model_factory: Callable[[], SegmentationModel], num_classes: int, **options: Any) -> Method:
    entry = METHODS.get(name)
    return entry.factory(model_factory, num_classes, **clean_options(entry.options, options))


def list_methods() -> list[dict[str, Any]]:
    """Name, family, paper and hyper-parameters (defaults, ranges, help) of each method."""
    return [entry.describe() for entry in METHODS]
