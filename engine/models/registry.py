from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.registry import Registry

if TYPE_CHECKING:
    from engine.models.base import SegmentationModel

MODELS: Registry[Callable[..., SegmentationModel]] = Registry("architecture")
register_model = MODELS.register
