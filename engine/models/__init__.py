"""Architectures behind one registry: ``build_model(name, num_classes, **options)``.

One file per architecture family registers its named configurations with
``@register_model``; importing this package imports them all, so the registry is the
only list of what exists (forms, API and CLI read ``list_models()``).
"""
from __future__ import annotations

from functools import cache
from typing import Any

import torch

from engine.models.base import SegmentationModel, predicted_classes, resize_logits
from engine.models.pretrained import BACKBONE_SOURCES, load_backbone_weights
from engine.models.registry import MEMORY_FORMATS, MODELS, register_model
from engine.models.weights import load_weights
from engine.options import clean_options

# isort: split
# Importing a family module registers its variants.
from engine.models import ddrnet, deeplabv3plus, hrnet, pspnet, segformer, setr, unet  # noqa: E402,F401

__all__ = ["SegmentationModel", "build_model", "list_models", "register_model", "resize_logits",
           "predicted_classes", "count_parameters",
           "declared_memory_format", "resolve_memory_format", "compile_model", "MEMORY_FORMATS"]

#: Parameter counts in the catalogue are given at Cityscapes' 19 classes, as in the papers' tables.
CATALOGUE_CLASSES = 19


def build_model(
    name: str, num_classes: int, weights: str | None = None, backbone_weights: str | None = None, **options: Any
) -> SegmentationModel:
    """Build a registered architecture.

    ``backbone_weights`` is a local ImageNet checkpoint in its original layout (see
    ``engine.models.pretrained``), loaded strictly into the encoder; ``weights`` is a
    local state dict of the whole model in our layout, loaded strictly after it.
    """
    entry = MODELS.get(name)
    cleaned = clean_options(entry.options, options)
    model = entry.factory(num_classes=num_classes, **cleaned)
    if backbone_weights:
        load_backbone_weights(model, entry.family, backbone_weights)
    if weights:
        load_weights(model, weights)
    return model


def declared_memory_format(name: str) -> str:
    """The layout architecture ``name`` declared at registration (``contiguous`` or ``channels_last``)."""
    return MODELS.get(name).extra["memory_format"]


def resolve_memory_format(name: str, choice: str = "auto") -> torch.memory_format:
    """The layout a run of ``name`` uses: the run's ``memory_format`` setting, where ``auto``
    means the architecture's declared one."""
    return MEMORY_FORMATS[declared_memory_format(name) if choice == "auto" else choice]


#: torch.compile's code generator; the tests use "eager" (Dynamo's graph capture without code generation).
COMPILE_BACKEND = "inductor"


def compile_model(model: SegmentationModel, mode: str | None = None) -> SegmentationModel:
    """``torch.compile`` the encoder and the decoders in place (``nn.Module.compile``), returning ``model``.

    The parts, not the model: methods call ``forward_train`` as well as ``forward``, and both
    go through the parts. In place, not ``torch.compile(model)``: that wrapper would prefix
    every state-dict key with ``_orig_mod.``, so checkpoints of compiled and eager runs would
    differ; these keep the same keys and load into either. ``mode`` is torch.compile's
    (None: its default; ``reduce-overhead`` adds CUDA graphs).
    """
    for part in (model.encoder, model.decoder, model.aux_decoder):
        if part is not None:
            part.compile(backend=COMPILE_BACKEND, mode=mode)
    return model


def count_parameters(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@cache
def _parameters_at_defaults(name: str) -> int:
    entry = MODELS.get(name)
    with torch.device("meta"):  # counts shapes without allocating memory
        model = entry.factory(num_classes=CATALOGUE_CLASSES, **clean_options(entry.options, {}))
    return count_parameters(model)


def list_models() -> list[dict[str, Any]]:
    """Name, family, paper, options (defaults, ranges, help), parameter count and the
    ImageNet checkpoint format ``backbone_weights`` accepts (None: none) of each architecture."""
    return [
        {
            **entry.describe(),
            "parameters": _parameters_at_defaults(entry.name),
            "backbone_weights": BACKBONE_SOURCES[entry.family].source if entry.family in BACKBONE_SOURCES else None,
        }
        for entry in MODELS
    ]
