"""DDRNet: Deep Dual-Resolution Networks for Real-time and Accurate Semantic Segmentation.

Hong, Pan, Sun and Jia, arXiv:2101.06085 (2021); official code
https://github.com/ydhongHIT/DDRNet.

Network (paper and official code): a stride-8 stem (two 3x3 stride-2
conv-BN-ReLU, then the ResNet stages ``layer1`` at stride 4 and ``layer2`` at stride 8),
after which the network splits into a high-resolution branch that stays at stride 8
with ``2 * planes`` channels and a low-resolution branch that goes to strides 16, 32
and 64. After each stage of both branches a bilateral fusion adds the low branch,
compressed by a 1x1 conv-BN and bilinearly upsampled, to the high branch, and the high
branch, downsampled by 3x3 stride-2 conv-BN(s), to the low one. A bottleneck stage
(expansion 2) ends each branch; the DAPPM aggregates context from the low branch, whose
output is upsampled and added to the high branch before the segmentation head.

Ordering: BN-ReLU-Conv inside DAPPM and the heads, and stages that end without ReLU
(the ReLU is applied where branches meet), exactly as the official code.

Variants (official code): DDRNet-23-slim: basic blocks (2, 2, 2, 2), planes 32, DAPPM
128 branch channels, head 64; DDRNet-23: planes 64, head 128; DDRNet-39: blocks (3, 4, 6,
3) with the stride-16 stage split in two halves, each followed by a bilateral fusion,
planes 64, head 256.

Auxiliary head (deep supervision, official ``seghead_extra``): on the high-resolution
branch after the stride-16 stage's fusion, weighted 0.4 by the training method.

Module names follow the official ImageNet checkpoints (``conv1``, ``layer3_``,
``compression3``, ``down4``...), so they load by name.

Encoder features: ``[high-resolution branch after the stride-16 stage fusion (stride 8,
2 * planes), high-resolution branch at the end (stride 8, 2 * planes), low-resolution
branch at the end (stride 64, 16 * planes)]``.
"""
from __future__ import annotations

import torch
from torch import nn

from engine.models.base import SegmentationModel
from engine.models.layers import ConvBN, upsample_to
from engine.models.registry import register_model
from engine.models.resnet import basic_stage, bottleneck_stage

#: DAPPM's pooled scales as (kernel, stride) of the average pools (paper, DAPPM figure).
DAPPM_POOLS = ((5, 2), (9, 4), (17, 8))
#: The final bottleneck stages double the width (official ``Bottleneck.expansion``).
BOTTLENECK_EXPANSION = 2
STAGE4_FUSION = ("layer4", "layer4_", "compression4", "down4")


def bn_relu_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(in_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2, bias=False),
    )


class DAPPM(nn.Module):
    """Deep Aggregation Pyramid Pooling Module (Hong et al. 2021).

    Five scales: the input itself and average pools of kernel 5/stride 2, 9/4, 17/8 and a
    global pool, each reduced by a BN-ReLU-1x1 conv. The pooled scales are upsampled and
    fused hierarchically: ``y_1 = scale_0(x)``, ``y_i = conv3x3(upsample(scale_i(x)) +
    y_{i-1})``. The five ``y_i`` are concatenated, compressed by a 1x1 conv and added to a
    1x1 shortcut of the input.
    """

    def __init__(self, in_channels: int, branch_channels: int, out_channels: int):
        super().__init__()
        self.scale0 = bn_relu_conv(in_channels, branch_channels, 1)
        pools = ([nn.AvgPool2d(kernel, stride, padding=kernel // 2) for kernel, stride in DAPPM_POOLS]
                 + [nn.AdaptiveAvgPool2d(1)])
        for index, pool in enumerate(pools, start=1):
            setattr(self, f"scale{index}", nn.Sequential(pool, *bn_relu_conv(in_channels, branch_channels, 1)))
            setattr(self, f"process{index}", bn_relu_conv(branch_channels, branch_channels, 3))
        self.compression = bn_relu_conv(branch_channels * (len(pools) + 1), out_channels, 1)
        self.shortcut = bn_relu_conv(in_channels, out_channels, 1)
        self.num_pooled = len(pools)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = [self.scale0(x)]
        for index in range(1, self.num_pooled + 1):
            pooled = getattr(self, f"scale{index}")(x)
            fused.append(getattr(self, f"process{index}")(upsample_to(pooled, x) + fused[-1]))
        return self.compression(torch.cat(fused, dim=1)) + self.shortcut(x)


class SegmentHead(nn.Module):
    """BN-ReLU-3x3 conv, BN-ReLU-1x1 classifier (official ``segmenthead``)."""

    def __init__(self, in_channels: int, head_channels: int, num_classes: int, index: int):
        super().__init__()
        self.index = index
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, head_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(head_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(head_channels, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.conv1(self.relu(self.bn1(features[self.index])))
        return self.conv2(self.relu(self.bn2(x)))


class DDRNetEncoder(nn.Module):
    def __init__(self, blocks: tuple[int, int, int, int], planes: int, stage3_fusions: int):
        super().__init__()
        high = planes * 2
        # The official stem convolutions keep their bias (before BN); we keep it to load its weights.
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, planes, 3, 2, 1), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, 2, 1), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
        )
        self.relu = nn.ReLU(inplace=False)  # not in place: the pre-activation maps are reused by the other branch
        self.layer1 = basic_stage(planes, planes, blocks[0], last_relu=False)
        self.layer2 = basic_stage(planes, planes * 2, blocks[1], stride=2, last_relu=False)
        # Each bilateral fusion names its (low stage, high stage, compression, down) modules.
        parts = [f"3_{part}" for part in range(1, stage3_fusions + 1)] if stage3_fusions > 1 else ["3"]
        self.stage3_fusions = [(f"layer{p}", f"layer{p}_", f"compression{p}", f"down{p}") for p in parts]
        low_in = high_in = planes * 2
        for index, (low_name, high_name, compression_name, down_name) in enumerate(self.stage3_fusions):
            blocks_here = blocks[2] // stage3_fusions
            self.add_module(low_name, basic_stage(low_in, planes * 4, blocks_here, stride=2 if index == 0 else 1,
                                                  last_relu=False))
            self.add_module(high_name, basic_stage(high_in, high, blocks_here, last_relu=False))
            self.add_module(compression_name, ConvBN(planes * 4, high, 1))
            self.add_module(down_name, ConvBN(high, planes * 4, 3, stride=2))
            low_in, high_in = planes * 4, high
        self.layer4 = basic_stage(planes * 4, planes * 8, blocks[3], stride=2, last_relu=False)
        self.layer4_ = basic_stage(high, high, blocks[3], last_relu=False)
        self.compression4 = ConvBN(planes * 8, high, 1)
        self.down4 = nn.Sequential(*ConvBN(high, planes * 4, 3, stride=2), nn.ReLU(inplace=True),
                                   *ConvBN(planes * 4, planes * 8, 3, stride=2))
        self.layer5_ = bottleneck_stage(high, high, 1, expansion=BOTTLENECK_EXPANSION, last_relu=False)
        self.layer5 = bottleneck_stage(planes * 8, planes * 8, 1, stride=2, expansion=BOTTLENECK_EXPANSION,
                                       last_relu=False)
        self.out_channels = [high, high * BOTTLENECK_EXPANSION, planes * 8 * BOTTLENECK_EXPANSION]

    def bilateral_fusion(
        self, low: torch.Tensor, high: torch.Tensor, names: tuple[str, str, str, str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One stage of both branches, then each branch receives the other's output."""
        low_stage, high_stage, compression, down = (getattr(self, name) for name in names)
        low = low_stage(self.relu(low))
        high = high_stage(self.relu(high))
        return low + down(self.relu(high)), high + upsample_to(compression(self.relu(low)), high)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.layer1(self.conv1(x))
        low = high = self.layer2(self.relu(x))
        for names in self.stage3_fusions:
            low, high = self.bilateral_fusion(low, high, names)
        after_stage3 = high
        low, high = self.bilateral_fusion(low, high, STAGE4_FUSION)
        return [after_stage3, self.layer5_(self.relu(high)), self.layer5(self.relu(low))]


class DDRNetDecoder(nn.Module):
    """DAPPM on the low branch, upsampled and added to the high branch, then the head."""

    def __init__(self, low_channels: int, spp_channels: int, out_channels: int, head_channels: int, num_classes: int):
        super().__init__()
        self.spp = DAPPM(low_channels, spp_channels, out_channels)
        self.final_layer = SegmentHead(out_channels, head_channels, num_classes, index=0)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:  # -> (B, K, H/8, W/8)
        high, low = features[1], features[2]
        return self.final_layer([high + upsample_to(self.spp(low), high)])


class DDRNet(SegmentationModel):
    def __init__(
        self,
        num_classes: int,
        blocks: tuple[int, int, int, int],
        planes: int,
        head_channels: int,
        stage3_fusions: int = 1,
        spp_channels: int = 128,
    ):
        encoder = DDRNetEncoder(blocks, planes, stage3_fusions)
        super().__init__(
            encoder,
            DDRNetDecoder(encoder.out_channels[2], spp_channels, encoder.out_channels[1], head_channels, num_classes),
            SegmentHead(encoder.out_channels[0], head_channels, num_classes, index=0),
        )


PAPER = "Hong et al., arXiv:2101.06085 (2021)"
#: bench/memory_format.py (CPU, 256x256, batch 2, one thread): channels_last trains in 0.86-0.94 and infers in
#: 0.91-1.00 of the contiguous time (docs/models.md, "Memory format").
MEMORY_FORMAT = "channels_last"


@register_model("ddrnet23_slim", family="DDRNet", paper=PAPER, memory_format=MEMORY_FORMAT)
def ddrnet23_slim(num_classes: int) -> DDRNet:
    return DDRNet(num_classes, blocks=(2, 2, 2, 2), planes=32, head_channels=64)


@register_model("ddrnet23", family="DDRNet", paper=PAPER, memory_format=MEMORY_FORMAT)
def ddrnet23(num_classes: int) -> DDRNet:
    return DDRNet(num_classes, blocks=(2, 2, 2, 2), planes=64, head_channels=128)


@register_model("ddrnet39", family="DDRNet", paper=PAPER, memory_format=MEMORY_FORMAT)
def ddrnet39(num_classes: int) -> DDRNet:
    return DDRNet(num_classes, blocks=(3, 4, 6, 3), planes=64, head_channels=256, stage3_fusions=2)
