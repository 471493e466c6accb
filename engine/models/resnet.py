"""ResNet backbone with dilation, shared by PSPNet and DeepLabV3+ (blocks also by HRNet and DDRNet).

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, arXiv:1512.03385;
dilated ("atrous") stages as in Yu & Koltun 2016 (arXiv:1511.07122) and DeepLab.

Layout: the torchvision one (ResNet v1.5: 7x7 stem convolution + max-pool, stride on the
3x3 convolution of a bottleneck), so that torchvision's ImageNet state dicts load by
name (``engine/models/pretrained.py``). We chose it over PSPNet's deep 3x3 stem
(ResNet-v1c) because those are the weights users have on disk; the deep stem adds about
0.1 M parameters and ~0.5 mIoU in mmsegmentation's ablations.

Dilation: a stage whose stride is replaced by dilation uses the same dilation in all its
blocks (as the PSPNet and DeepLab papers and mmsegmentation do; torchvision keeps the
previous rate in the first block).

Encoder features (``ResNet.forward``): ``[layer1, layer2, layer3, layer4]`` with
channels ``[256, 512, 1024, 2048]`` and strides ``[4, 8, 16, 32]`` at output stride 32,
``[4, 8, 16, 16]`` at 16 and ``[4, 8, 8, 8]`` at 8.
"""
from __future__ import annotations

import torch
from torch import nn

#: Blocks per stage of the ImageNet ResNets (He et al. 2016, Table 1).
RESNET_DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
#: Dilation of (layer3, layer4) that reaches each output stride with stride-1 stages.
DILATIONS_FOR_OUTPUT_STRIDE = {32: (1, 1), 16: (1, 2), 8: (2, 4)}


def downsample_shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34, HRNet, DDRNet).

    ``final_relu=False`` leaves the sum un-activated: DDRNet ends every stage that way and
    applies the ReLU where the branches meet.
    """

    CONV_BN_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"))  # each bn applied right after its conv (folding.py)

    def __init__(self, in_channels: int, channels: int, stride: int = 1, final_relu: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (downsample_shortcut(in_channels, channels, stride)
                           if stride != 1 or in_channels != channels else None)
        self.final_relu = final_relu
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + shortcut
        return self.relu(out) if self.final_relu else out


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 bottleneck; ``expansion`` 4 in ResNet/HRNet, 2 in DDRNet."""

    CONV_BN_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))  # see engine/models/folding.py

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        dilation: int = 1,
        expansion: int = 4,
        final_relu: bool = True,
    ):
        super().__init__()
        out_channels = channels * expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (downsample_shortcut(in_channels, out_channels, stride)
                           if stride != 1 or in_channels != out_channels else None)
        self.final_relu = final_relu
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out)) + shortcut
        return self.relu(out) if self.final_relu else out


def bottleneck_stage(
    in_channels: int, channels: int, blocks: int, stride: int = 1, dilation: int = 1, expansion: int = 4,
    last_relu: bool = True,
) -> nn.Sequential:
    """``blocks`` bottlenecks; the first one changes stride and width."""
    layers = []
    for index in range(blocks):
        final_relu = last_relu or index < blocks - 1
        layers.append(Bottleneck(in_channels, channels, stride if index == 0 else 1, dilation, expansion, final_relu))
        in_channels = layers[-1].out_channels
    return nn.Sequential(*layers)


def basic_stage(in_channels: int, channels: int, blocks: int, stride: int = 1, last_relu: bool = True) -> nn.Sequential:
    """``blocks`` basic blocks; the first one changes stride and width."""
    return nn.Sequential(
        *(
            BasicBlock(in_channels if index == 0 else channels, channels, stride if index == 0 else 1,
                       last_relu or index < blocks - 1)
            for index in range(blocks)
        )
    )


class ResNet(nn.Module):
    """Bottleneck ResNet without its classifier, returning the four stage outputs."""

    CONV_BN_PAIRS = (("conv1", "bn1"),)  # the stem (engine/models/folding.py)

    def __init__(self, depths: tuple[int, int, int, int], output_stride: int = 32):
        super().__init__()
        if output_stride not in DILATIONS_FOR_OUTPUT_STRIDE:
            raise ValueError(f"output_stride must be one of {sorted(DILATIONS_FOR_OUTPUT_STRIDE)}, got {output_stride}")
        dilation3, dilation4 = DILATIONS_FOR_OUTPUT_STRIDE[output_stride]
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = bottleneck_stage(64, 64, depths[0])
        self.layer2 = bottleneck_stage(256, 128, depths[1], stride=2)
        # A dilated stage keeps its input resolution: stride 1, larger receptive field instead.
        self.layer3 = bottleneck_stage(512, 256, depths[2], stride=2 if dilation3 == 1 else 1, dilation=dilation3)
        self.layer4 = bottleneck_stage(1024, 512, depths[3], stride=2 if dilation4 == 1 else 1, dilation=dilation4)
        self.out_channels = [256, 512, 1024, 2048]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        features = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            features.append(x)
        return features
