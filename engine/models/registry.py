"""The architecture registry: ``@register_model(name, family=..., paper=..., memory_format=...)``.

``memory_format`` is part of every registration, not a default: it is the layout the
trainer, the evaluation and inference put the network and its inputs in when a run asks
for ``memory_format=auto`` (issue 22). Each family's choice was measured with
``bench/memory_format.py`` (docs/models.md, "Memory format"); both layouts compute the
same function, so the choice changes speed only.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from engine.options import Option
from engine.registry import Registry

if TYPE_CHECKING:
    from engine.models.base import SegmentationModel

MODELS: Registry[Callable[..., SegmentationModel]] = Registry("architecture")
#: The layouts an architecture may declare, by the name runs and the catalogue use.
MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def register_model(name: str, *, family: str, paper: str, memory_format: str,
                   options: tuple[Option, ...] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    if memory_format not in MEMORY_FORMATS:
        raise ValueError(f"architecture `{name}`: memory_format must be one of {', '.join(MEMORY_FORMATS)}, "
                         f"got {memory_format!r}")
    return MODELS.register(name, family=family, paper=paper, options=options, memory_format=memory_format)
