"""U-Net: Convolutional Networks for Biomedical Image Segmentation.

Ronneberger, Fischer and Brox, MICCAI 2015, arXiv:1505.04597. The paper's network has
widths 64-1024 over five levels with unpadded convolutions; we use padded convolutions
with BatchNorm (as every modern re-implementation does) so the output matches the input
size, a configurable base width, and either bilinear upsampling + conv (fewer
parameters, no checkerboard artefacts) or the paper's transposed "up-convolution".

``stem_stride=2`` starts with a strided convolution, which quarters the cost for small
images at little loss (the calibration probe for fashion-scenes used it).

Encoder features: ``depth + 1`` maps, strides 1, 2, 4, ... 2**depth (times the stem
stride), channels ``base_width * 2**i``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.base import SegmentationModel
from engine.models.layers import ConvBNReLU
from engine.models.registry import register_model
from engine.options import Option


class DoubleConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(ConvBNReLU(in_channels, out_channels), ConvBNReLU(out_channels, out_channels))


class UNetEncoder(nn.Module):
    def __init__(self, widths: list[int], stem_stride: int):
        super().__init__()
        self.stem = nn.Sequential(ConvBNReLU(3, widths[0], stride=stem_stride), ConvBNReLU(widths[0], widths[0]))
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), DoubleConv(c_in, c_out))
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [self.stem(x)]
        for down in self.downs:
            features.append(down(features[-1]))
        return features


class UpBlock(nn.Module):
    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, upsampling: str):
        super().__init__()
        self.upsampling = upsampling
        if upsampling == "transposed":
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
            in_channels //= 2
        self.conv = DoubleConv(in_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.upsampling == "transposed":
            x = self.up(x)
        # Odd input sizes make the skip and the upsampled map differ by a pixel: match the skip.
        if x.shape[-2:] != skip.shape[-2:]:
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


class UNetDecoder(nn.Module):
    def __init__(self, widths: list[int], num_classes: int, upsampling: str):
        super().__init__()
        self.ups = nn.ModuleList(
            UpBlock(widths[i + 1], widths[i], widths[i], upsampling) for i in reversed(range(len(widths) - 1))
        )
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for up, skip in zip(self.ups, reversed(features[:-1]), strict=True):
            x = up(x, skip)
        return self.classifier(x)


class UNet(SegmentationModel):
    def __init__(self, num_classes: int, *, base_width: int, depth: int, upsampling: str, stem_stride: int):
        widths = [base_width * 2**i for i in range(depth + 1)]
        super().__init__(UNetEncoder(widths, stem_stride), UNetDecoder(widths, num_classes, upsampling))


UNET_OPTIONS = (
    Option("base_width", "int", 32, "Channels of the first level; each level doubles it (the paper: 64).",
           min=4, max=128),
    Option("depth", "int", 4, "Number of downsampling steps (the paper: 4).", min=1, max=6),
    Option("upsampling", "str", "bilinear", "Bilinear upsampling + conv, or the paper's transposed up-convolution.",
           choices=("bilinear", "transposed")),
    Option("stem_stride", "int", 1, "Stride of the first convolution; 2 quarters the cost on small images.",
           choices=(1, 2)),
)


PAPER = "Ronneberger et al., MICCAI 2015, arXiv:1505.04597"
#: bench/memory_format.py (CPU, one thread): channels_last trains in 0.79 and infers in 0.59 of the contiguous time
#: at 256x256 (default widths), 1.00 and 0.74 at 64x64 with base_width 16, stem_stride 2 (docs/models.md).
MEMORY_FORMAT = "channels_last"


@register_model("unet", family="U-Net", paper=PAPER, memory_format=MEMORY_FORMAT, options=UNET_OPTIONS)
def unet(num_classes: int, **options) -> UNet:
    return UNet(num_classes, **options)
