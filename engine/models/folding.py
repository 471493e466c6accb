"""Inference copies with each BatchNorm folded into the convolution before it.

In eval mode a BatchNorm is a per-channel affine map of fixed statistics, so
``bn(conv(x))`` is one convolution with weight ``w * g / sqrt(var + eps)`` and bias
``(b - mean) * g / sqrt(var + eps) + beta`` (``torch.nn.utils.fusion.fuse_conv_bn_eval``):
the same function, one pass over the activations fewer (the fold of Jacob et al. 2018,
arXiv:1712.05877, section 3.2; what TensorRT and ONNX Runtime do at export).

``fold_batchnorm`` returns a folded *copy* for inference and leaves the network alone: the
trained model keeps its BatchNorm layers, so its state dict, its checkpoints and training
are unchanged. Pairs are folded only where the code applies the BatchNorm right after the
convolution: adjacent in a plain ``nn.Sequential`` (ConvBNReLU, ConvBN, shortcuts, heads),
or named in a block's ``CONV_BN_PAIRS`` (ResNet's blocks and stem, HRNet's stem), whose
``forward`` calls ``bn(conv(x))`` for each of them.
"""
from __future__ import annotations

import copy
from itertools import pairwise

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` whose conv -> BatchNorm pairs are single convolutions."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if type(module).forward is nn.Sequential.forward:
            for first, second in pairwise(list(module._modules)):
                _fold_pair(module, first, second)
        for conv_name, bn_name in getattr(module, "CONV_BN_PAIRS", ()):
            _fold_pair(module, conv_name, bn_name)
    return folded


def _fold_pair(parent: nn.Module, conv_name: str, bn_name: str) -> None:
    conv, bn = parent._modules[conv_name], parent._modules[bn_name]
    if isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d and bn.track_running_stats:
        parent._modules[conv_name] = fuse_conv_bn_eval(conv, bn)
        parent._modules[bn_name] = nn.Identity()
