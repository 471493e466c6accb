"""DeepLabV3+: Encoder-Decoder with Atrous Separable Convolution.

Chen, Zhu, Papandreou, Schroff and Adam, ECCV 2018, arXiv:1802.02611; official code
https://github.com/tensorflow/models/tree/master/research/deeplab.

Defaults of the paper: output stride 16 with ASPP rates 6, 12, 18 (doubled to 12, 24, 36
at output stride 8) plus image-level pooling, 256 channels; the decoder reduces the
stride-4 low-level features (ResNet layer1) to 48 channels with a 1x1 conv, concatenates
them with the ASPP output upsampled x4 and refines with two 3x3 convs of 256 channels.
With a ResNet backbone we use ordinary (not depthwise-separable) 3x3 convolutions, as
the paper's ResNet-101 experiments and most re-implementations do; the separable ones
belong to its modified Xception. Dropout 0.1 before the classifier, as mmsegmentation.

Backbone: torchvision-layout ResNet (see ``engine/models/resnet.py``); at output stride
16 layer4 is dilated (rate 2), at 8 layer3 and layer4 (rates 2 and 4).

Encoder features: ``[layer1, layer2, layer3, layer4]``, channels ``[256, 512, 1024,
2048]``, strides ``[4, 8, 16, 16]`` (output stride 16) or ``[4, 8, 8, 8]`` (8).
"""
from __future__ import annotations

import torch
from torch import nn

from engine.models.base import SegmentationModel
from engine.models.layers import ASPP, ConvBNReLU, upsample_to
from engine.models.registry import register_model
from engine.models.resnet import RESNET_DEPTHS, ResNet
from engine.options import Option

ASPP_RATES_AT_OS16 = (6, 12, 18)
ASPP_CHANNELS = 256
LOW_LEVEL_CHANNELS = 48
DECODER_CHANNELS = 256
DROPOUT = 0.1


class DeepLabV3PlusDecoder(nn.Module):
    def __init__(self, in_channels: int, low_level_channels: int, num_classes: int, output_stride: int):
        super().__init__()
        rates = tuple(rate * 16 // output_stride for rate in ASPP_RATES_AT_OS16)
        self.aspp = ASPP(in_channels, rates, ASPP_CHANNELS)
        self.reduce_low_level = ConvBNReLU(low_level_channels, LOW_LEVEL_CHANNELS, kernel_size=1)
        self.fuse = nn.Sequential(
            ConvBNReLU(ASPP_CHANNELS + LOW_LEVEL_CHANNELS, DECODER_CHANNELS),
            ConvBNReLU(DECODER_CHANNELS, DECODER_CHANNELS),
        )
        self.dropout = nn.Dropout2d(DROPOUT)
        self.classifier = nn.Conv2d(DECODER_CHANNELS, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:  # -> (B, K, H/4, W/4)
        low_level = self.reduce_low_level(features[0])
        context = upsample_to(self.aspp(features[-1]), low_level)
        return self.classifier(self.dropout(self.fuse(torch.cat([context, low_level], dim=1))))


class DeepLabV3Plus(SegmentationModel):
    def __init__(self, num_classes: int, depth: int, *, output_stride: int):
        encoder = ResNet(RESNET_DEPTHS[depth], output_stride=output_stride)
        super().__init__(encoder, DeepLabV3PlusDecoder(encoder.out_channels[3], encoder.out_channels[0], num_classes,
                                                       output_stride))


PAPER = "Chen et al., ECCV 2018, arXiv:1802.02611"
#: bench/memory_format.py (CPU, 256x256, batch 2, one thread): channels_last trains in 0.95-0.99 and infers in
#: 0.91-0.97 of the contiguous time (docs/models.md, "Memory format").
MEMORY_FORMAT = "channels_last"
DEEPLAB_OPTIONS = (
    Option(
        "output_stride",
        "int",
        16,
        "Backbone output stride; 8 dilates layer3 too and doubles the ASPP rates "
        "(about 3x the compute, +1-2 mIoU in the paper).",
        choices=(8, 16),
    ),
)


@register_model("deeplabv3plus_r50", family="DeepLabV3+", paper=PAPER, memory_format=MEMORY_FORMAT,
                options=DEEPLAB_OPTIONS)
def deeplabv3plus_r50(num_classes: int, **options) -> DeepLabV3Plus:
    return DeepLabV3Plus(num_classes, depth=50, **options)


@register_model("deeplabv3plus_r101", family="DeepLabV3+", paper=PAPER, memory_format=MEMORY_FORMAT,
                options=DEEPLAB_OPTIONS)
def deeplabv3plus_r101(num_classes: int, **options) -> DeepLabV3Plus:
    return DeepLabV3Plus(num_classes, depth=101, **options)
