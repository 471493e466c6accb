"""ImageNet backbone checkpoints that users already have on disk, mapped onto our encoders.

``build_model(name, num_classes, backbone_weights=PATH)`` reads a foreign state dict,
drops the keys of the checkpoint's own classification head (listed per source below and
in docs/models.md), renames the rest to our encoder's key names and loads them into
``model.encoder`` strictly: any missing, unexpected or mis-shaped key is an error that
lists them. Nothing is downloaded.

One ``KeyMapping`` per source, keyed by the architecture family it serves:

* PSPNet, DeepLabV3+: torchvision ``resnet50`` / ``resnet101`` state dicts; head ``fc.``.
* HRNetV2: HRNet-Image-Classification checkpoints (``hrnetv2_w18_imagenet_pretrained.pth``,
  ``hrnet_w18_small_model_v2.pth``, ``hrnetv2_w48_imagenet_pretrained.pth``); head
  ``incre_modules.``, ``downsamp_modules.``, ``final_layer.``, ``classifier.``.
* DDRNet: the official ImageNet checkpoints (``DDRNet23s_imagenet.pth``...); head
  ``down5.``, ``last_layer.``, ``linear.``.
* SegFormer: NVlabs ``mit_b0.pth`` ... ``mit_b2.pth``; head ``head.``.

Our encoders keep the module names of those checkpoints where the two structures agree,
so most keys map to themselves; the mapping still owns the differences (wrappers such
as ``module.`` from DataParallel, heads, buffers older files lack) in one place.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from engine.models.weights import WeightsError, load_state_dict_strict, read_state_dict

if TYPE_CHECKING:
    from engine.models.base import SegmentationModel

#: Prefix that DataParallel / DistributedDataParallel checkpoints put before every key.
DATA_PARALLEL_PREFIX = "module."
#: BatchNorm buffer that checkpoints saved before PyTorch 0.4.1 do not have.
BATCHES_TRACKED = "num_batches_tracked"


@dataclass(frozen=True)
class KeyMapping:
    """How one foreign checkpoint layout maps to our encoder's key names (both ways)."""

    source: str
    head_prefixes: tuple[str, ...]
    #: (foreign substring, our substring) renames, applied in order; empty where names agree.
    renames: tuple[tuple[str, str], ...] = ()

    def is_head(self, key: str) -> bool:
        return key.startswith(self.head_prefixes)

    def to_ours(self, key: str) -> str:
        key = key.removeprefix(DATA_PARALLEL_PREFIX)
        for foreign, ours in self.renames:
            key = key.replace(foreign, ours)
        return key

    def to_foreign(self, key: str) -> str:
        for foreign, ours in reversed(self.renames):
            key = key.replace(ours, foreign)
        return key

    def map_state_dict(self, foreign: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Foreign keys -> encoder keys, without the classification head."""
        return {self.to_ours(key): value for key, value in foreign.items()
                if not self.is_head(key.removeprefix(DATA_PARALLEL_PREFIX))}


#: Architecture family (as registered) -> the checkpoint layout its encoder loads.
BACKBONE_SOURCES: dict[str, KeyMapping] = {
    "PSPNet": KeyMapping("torchvision ResNet-50/101 ImageNet state dict", head_prefixes=("fc.",)),
    "DeepLabV3+": KeyMapping("torchvision ResNet-50/101 ImageNet state dict", head_prefixes=("fc.",)),
    "HRNetV2": KeyMapping(
        "HRNet-Image-Classification ImageNet checkpoint",
        head_prefixes=("incre_modules.", "downsamp_modules.", "final_layer.", "classifier."),
    ),
    "DDRNet": KeyMapping("official DDRNet ImageNet checkpoint (ydhongHIT/DDRNet)",
                         head_prefixes=("down5.", "last_layer.", "linear.")),
    "SegFormer": KeyMapping("NVlabs SegFormer mit_b* ImageNet checkpoint", head_prefixes=("head.",)),
}


def backbone_source(family: str) -> KeyMapping:
    try:
        return BACKBONE_SOURCES[family]
    except KeyError:
        raise WeightsError(
            f"no ImageNet backbone checkpoint format is known for {family} models; "
            f"backbone_weights works for: {', '.join(BACKBONE_SOURCES)}"
        ) from None


def load_backbone_weights(model: SegmentationModel, family: str, path: str | Path) -> None:
    """Load a foreign ImageNet checkpoint into ``model.encoder`` (strict, after key mapping)."""
    mapping = backbone_source(family)
    state = mapping.map_state_dict(read_state_dict(path))
    own = model.encoder.state_dict()
    for key, value in own.items():
        # Old checkpoints lack this counter; it only matters for momentum-free BatchNorm.
        if key.endswith(BATCHES_TRACKED) and key not in state:
            state[key] = value
    load_state_dict_strict(model.encoder, state, f"backbone weights {path} (expected a {mapping.source})")


def foreign_state_dict(model: SegmentationModel, family: str) -> dict[str, torch.Tensor]:
    """Our encoder's weights in the foreign layout, without its head: the inverse of loading.

    Used by the tests (no download) and to export an encoder for the original code bases.
    """
    mapping = backbone_source(family)
    return {mapping.to_foreign(key): value for key, value in model.encoder.state_dict().items()}
