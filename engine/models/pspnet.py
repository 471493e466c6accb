"""PSPNet: Pyramid Scene Parsing Network.

Zhao, Shi, Qi, Wang and Jia, CVPR 2017, arXiv:1612.01105; official code
https://github.com/hszhao/semseg (PyTorch) and https://github.com/hszhao/PSPNet (Caffe).

Defaults of the paper and the official code: dilated ResNet at output stride 8 (layer3
dilation 2, layer4 dilation 4), pyramid pooling bins 1, 2, 3, 6 each reduced to 2048/4 =
512 channels, a 3x3 conv-BN-ReLU to 512 channels, dropout 0.1 and a 1x1 classifier; an
auxiliary head on layer3 (3x3 conv to 256, BN, ReLU, dropout 0.1, 1x1 classifier)
weighted 0.4 in the loss by the training method.

Backbone stem: torchvision's 7x7 layout (see ``engine/models/resnet.py``), not the
paper's deep 3x3 stem, so that torchvision ImageNet weights load with
``backbone_weights=PATH``.

Encoder features: ``[layer1, layer2, layer3, layer4]``, strides ``[4, 8, 8, 8]``,
channels ``[256, 512, 1024, 2048]``. The decoder reads layer4, the auxiliary head layer3.
"""
from __future__ import annotations

import torch
from torch import nn

from engine.models.base import SegmentationModel
from engine.models.layers import ConvBNReLU, PyramidPooling
from engine.models.registry import register_model
from engine.models.resnet import RESNET_DEPTHS, ResNet

OUTPUT_STRIDE = 8
PYRAMID_BINS = (1, 2, 3, 6)
HEAD_CHANNELS = 512
AUX_CHANNELS = 256
DROPOUT = 0.1


class PSPHead(nn.Module):
    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.pyramid = PyramidPooling(in_channels, PYRAMID_BINS)
        self.bottleneck = ConvBNReLU(self.pyramid.out_channels, HEAD_CHANNELS)
        self.dropout = nn.Dropout2d(DROPOUT)
        self.classifier = nn.Conv2d(HEAD_CHANNELS, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.dropout(self.bottleneck(self.pyramid(features[-1]))))


class AuxiliaryHead(nn.Module):
    """Deep supervision on ``features[index]`` (PSPNet's auxiliary loss on ResNet stage 4, i.e. our layer3)."""

    def __init__(self, in_channels: int, num_classes: int, index: int):
        super().__init__()
        self.index = index
        self.block = ConvBNReLU(in_channels, AUX_CHANNELS)
        self.dropout = nn.Dropout2d(DROPOUT)
        self.classifier = nn.Conv2d(AUX_CHANNELS, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.dropout(self.block(features[self.index])))


class PSPNet(SegmentationModel):
    def __init__(self, num_classes: int, depth: int):
        encoder = ResNet(RESNET_DEPTHS[depth], output_stride=OUTPUT_STRIDE)
        super().__init__(
            encoder,
            PSPHead(encoder.out_channels[3], num_classes),
            AuxiliaryHead(encoder.out_channels[2], num_classes, index=2),
        )


PAPER = "Zhao et al., CVPR 2017, arXiv:1612.01105"
#: bench/memory_format.py (CPU, 256x256, batch 2, one thread): channels_last trains in 1.2-1.4 of the contiguous
#: time (its dilated stages at stride 8 are slower in NHWC), so PSPNet stays contiguous (docs/models.md).
MEMORY_FORMAT = "contiguous"


@register_model("pspnet_r50", family="PSPNet", paper=PAPER, memory_format=MEMORY_FORMAT)
def pspnet_r50(num_classes: int) -> PSPNet:
    return PSPNet(num_classes, depth=50)


@register_model("pspnet_r101", family="PSPNet", paper=PAPER, memory_format=MEMORY_FORMAT)
def pspnet_r101(num_classes: int) -> PSPNet:
    return PSPNet(num_classes, depth=101)
