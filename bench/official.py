"""The official code of three architectures, loaded from local clones for ``bench/reference.py --official``.

These references do not install from the package index, so the bench imports them from a clone
the user makes (never from the network, never copied here), builds each without weights at
the bench's number of classes, and pairs it with ours:

* ``ddrnet23_slim``: ``segmentation/DDRNet_23_slim.py`` of github.com/ydhongHIT/DDRNet (Hong et
  al. 2021, arXiv:2101.06085), ``DualResNet(BasicBlock, [2, 2, 2, 2], planes=32, spp_planes=128,
  head_planes=64, augment=True)`` as its ``DualResNet_imagenet`` builds it for Cityscapes;
* ``hrnetv2_w18_small``: ``lib/models/seg_hrnet.py`` of github.com/HRNet/HRNet-Semantic-Segmentation
  (Wang et al. 2020, arXiv:1908.07919; branch ``HRNet-OCR``, the default), ``get_seg_model`` with
  the stages of the repository's ``seg_hrnet_w18_small_v2_512x1024`` Cityscapes config (branch
  ``master``), written out below;
* ``unet``: ``unet/unet_model.py`` of github.com/milesial/Pytorch-UNet, ``UNet(3, classes,
  bilinear=False)`` (the paper's widths 64-1024 and transposed up-convolutions), against ours
  with ``base_width=64, upsampling="transposed"``.

The DDRNet and HRNet code normalise with ``nn.SyncBatchNorm`` for multi-GPU training; on one
device that computes what ``nn.BatchNorm2d`` does, which the bench puts in its place (the
modules read the name when the network is built). Their outputs are at 1/8 (DDRNet, main and
auxiliary head) and 1/4 (HRNet) of the input: the loss and inference upsample them bilinearly
to the input, as the repositories' criteria and test code do and as ours return them.
"""
from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy
import torch
import torch.nn.functional as F
from torch import nn

from bench.architectures import AUX_LOSS_WEIGHT

#: Stages of HRNetV2-W18-Small-v2 (``experiments/cityscapes/seg_hrnet_w18_small_v2_512x1024_...yaml``).
HRNET_W18_SMALL_V2 = {
    "FINAL_CONV_KERNEL": 1,
    "STAGE1": {"NUM_MODULES": 1, "NUM_BRANCHES": 1, "BLOCK": "BOTTLENECK", "NUM_BLOCKS": [2],
               "NUM_CHANNELS": [64], "FUSE_METHOD": "SUM"},
    "STAGE2": {"NUM_MODULES": 1, "NUM_BRANCHES": 2, "BLOCK": "BASIC", "NUM_BLOCKS": [2, 2],
               "NUM_CHANNELS": [18, 36], "FUSE_METHOD": "SUM"},
    "STAGE3": {"NUM_MODULES": 3, "NUM_BRANCHES": 3, "BLOCK": "BASIC", "NUM_BLOCKS": [2, 2, 2],
               "NUM_CHANNELS": [18, 36, 72], "FUSE_METHOD": "SUM"},
    "STAGE4": {"NUM_MODULES": 2, "NUM_BRANCHES": 4, "BLOCK": "BASIC", "NUM_BLOCKS": [2, 2, 2, 2],
               "NUM_CHANNELS": [18, 36, 72, 144], "FUSE_METHOD": "SUM"},
}


class _Config(dict):
    """The attribute-or-key access of the yacs ``CfgNode`` the HRNet code reads its config through."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _config(value: Any) -> Any:
    return _Config({key: _config(item) for key, item in value.items()}) if isinstance(value, dict) else value


def load_module(clone: Path, relative: str) -> ModuleType:
    """Import ``clone/relative`` as a module of a package of its folder, so that its relative imports
    (``from .bn_helper import ...``) resolve to the files beside it, without running the folder's
    ``__init__.py`` (which imports the repository's other models)."""
    path = clone / relative
    package = "seglab_official_" + re.sub(r"\W", "_", str(path.parent.resolve()))
    if package not in sys.modules:
        module = ModuleType(package)
        module.__path__ = [str(path.parent)]
        sys.modules[package] = module
    spec = importlib.util.spec_from_file_location(f"{package}.{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _single_device(module: ModuleType, *names: str) -> ModuleType:
    for name in names:
        setattr(module, name, nn.BatchNorm2d)
    return module


def ddrnet(module: ModuleType, classes: int) -> nn.Module:
    _single_device(module, "BatchNorm2d")
    return module.DualResNet(module.BasicBlock, [2, 2, 2, 2], num_classes=classes, planes=32, spp_planes=128,
                             head_planes=64, augment=True)


def hrnet(module: ModuleType, classes: int) -> nn.Module:
    _single_device(module, "BatchNorm2d", "BatchNorm2d_class")
    # It sizes the head with ``np.int``, an alias NumPy 1.24 removed: its module gets NumPy with it back.
    module.np = SimpleNamespace(**vars(numpy), int=int)
    config = _config({"MODEL": {"EXTRA": HRNET_W18_SMALL_V2, "ALIGN_CORNERS": False, "PRETRAINED": ""},
                      "DATASET": {"NUM_CLASSES": classes}})
    return module.get_seg_model(config)


def unet(module: ModuleType, classes: int) -> nn.Module:
    return module.UNet(3, classes, bilinear=False)


def _logits(outputs: torch.Tensor | list[torch.Tensor], size: torch.Size) -> list[torch.Tensor]:
    """Each head's logits at the input size (the main head first)."""
    heads = outputs if isinstance(outputs, list | tuple) else [outputs]
    return [head if head.shape[-2:] == size else F.interpolate(head, size=size, mode="bilinear", align_corners=False)
            for head in heads]


def official_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``bench.memory_format.training_loss`` on the official outputs: the auxiliary head at the same weight."""
    main, *auxiliary = _logits(model(images), labels.shape[-2:])
    loss = F.cross_entropy(main, labels)
    for head in auxiliary:
        loss = loss + AUX_LOSS_WEIGHT * F.cross_entropy(head, labels)
    return loss


def official_forward(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return _logits(model(images), images.shape[-2:])[0]


@dataclass(frozen=True)
class Official:
    repository: str
    path: str  # the file imported, relative to the clone
    build: Callable[[ModuleType, int], nn.Module]  # (its module, classes) -> the network without weights
    options: dict[str, Any] = field(default_factory=dict)  # our registered model's options

    def network(self, clone: Path, classes: int) -> nn.Module:
        return self.build(load_module(clone, self.path), classes)


OFFICIAL = {
    "ddrnet23_slim": Official("github.com/ydhongHIT/DDRNet", "segmentation/DDRNet_23_slim.py", ddrnet),
    "hrnetv2_w18_small": Official("github.com/HRNet/HRNet-Semantic-Segmentation", "lib/models/seg_hrnet.py", hrnet),
    "unet": Official("github.com/milesial/Pytorch-UNet", "unet/unet_model.py", unet,
                     {"base_width": 64, "upsampling": "transposed"}),
}
