"""HRNetV2: Deep High-Resolution Representation Learning for Visual Recognition.

Wang, Sun, Cheng, Jiang, Deng, Zhao, Liu, Mu, Tan, Wang, Liu and Xiao, TPAMI 2020,
arXiv:1908.07919; official code https://github.com/HRNet/HRNet-Semantic-Segmentation
(and HRNet-Image-Classification for the ImageNet weights).

Network: a stride-4 stem (two 3x3 stride-2 conv-BN-ReLU, 64 channels), stage 1 of
bottlenecks (64 -> 256 channels), then stages 2-4 with 2, 3 and 4 parallel branches of
widths ``C, 2C, 4C, 8C`` at strides 4, 8, 16, 32. Each stage repeats a module of
``blocks`` basic blocks per branch followed by a multi-resolution fusion (every output
branch sums all input branches: 1x1 conv-BN + bilinear upsampling from lower resolutions,
chains of 3x3 stride-2 conv-BN(-ReLU) from higher ones). A transition opens the next,
lower-resolution branch from the last one with a 3x3 stride-2 conv-BN-ReLU.

HRNetV2 head (official segmentation code): all four branches upsampled to stride 4 and
concatenated (``15C`` channels), a 1x1 conv-BN-ReLU keeping the width, and a 1x1
classifier (both convolutions with bias, as the official code).

Variants (official configs): W18-Small-v2 has modules (1, 3, 2) and 2 blocks per branch
with a 2-block stage 1; W18 and W48 have modules (1, 4, 3) and 4 blocks everywhere.

Module names follow HRNet-Image-Classification (``conv1``, ``transition1``,
``stage2.0.fuse_layers.1.0.0.0``...), so its ImageNet checkpoints load by name.

Encoder features: the four branches, strides ``[4, 8, 16, 32]``, channels
``[C, 2C, 4C, 8C]``.
"""
from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.base import SegmentationModel
from engine.models.layers import ConvBN, ConvBNReLU, upsample_to
from engine.models.registry import register_model
from engine.models.resnet import basic_stage, bottleneck_stage

STEM_CHANNELS = 64


def downsampling_path(in_channels: int, out_channels: int, steps: int) -> nn.Sequential:
    """``steps`` 3x3 stride-2 convs; the intermediate ones keep the width and end with ReLU."""
    layers = [ConvBNReLU(in_channels, in_channels, stride=2) for _ in range(steps - 1)]
    return nn.Sequential(*layers, ConvBN(in_channels, out_channels, 3, stride=2))


class HighResolutionModule(nn.Module):
    """Parallel branches of basic blocks, then every output branch sums all inputs."""

    def __init__(self, widths: list[int], blocks: int):
        super().__init__()
        self.branches = nn.ModuleList(basic_stage(width, width, blocks) for width in widths)
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(
                ConvBN(widths[j], widths[i], 1) if j > i
                else nn.Identity() if j == i
                else downsampling_path(widths[j], widths[i], i - j)
                for j in range(len(widths))
            )
            for i in range(len(widths))
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        branches = [branch(x) for branch, x in zip(self.branches, inputs, strict=True)]
        outputs = []
        for i, fuse in enumerate(self.fuse_layers):
            total = branches[i]
            for j, path in enumerate(cast(nn.ModuleList, fuse)):
                if j != i:
                    total = total + upsample_to(path(branches[j]), branches[i])
            outputs.append(self.relu(total))
        return outputs


class Transition(nn.ModuleList):
    """Adapts branch widths between stages and opens one new, half-resolution branch."""

    def __init__(self, previous: list[int], widths: list[int]):
        layers: list[nn.Module] = [
            ConvBNReLU(previous[i], widths[i]) if previous[i] != widths[i] else nn.Identity()
            for i in range(len(previous))
        ]
        layers.append(nn.Sequential(ConvBNReLU(previous[-1], widths[-1], stride=2)))
        super().__init__(layers)

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        # One layer more than inputs: the last opens the new branch from the lowest resolution.
        return [layer(x) for layer, x in zip(self, inputs, strict=False)] + [self[-1](inputs[-1])]


class HRNetEncoder(nn.Module):
    # Set by setattr in the stage loop, under the official checkpoint's names.
    transition1: Transition
    transition2: Transition
    transition3: Transition
    stage2: nn.Sequential
    stage3: nn.Sequential
    stage4: nn.Sequential
    CONV_BN_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"))  # the stem (engine/models/folding.py)

    def __init__(self, width: int, stage1_blocks: int, modules: tuple[int, int, int], blocks: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        self.conv2 = nn.Conv2d(STEM_CHANNELS, STEM_CHANNELS, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(STEM_CHANNELS)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = bottleneck_stage(STEM_CHANNELS, STEM_CHANNELS, stage1_blocks)
        previous: list[int] = [cast(int, self.layer1[-1].out_channels)]
        for stage, repeats in enumerate(modules, start=2):
            widths = [width * 2**i for i in range(stage)]
            setattr(self, f"transition{stage - 1}", Transition(previous, widths))
            setattr(self, f"stage{stage}",
                    nn.Sequential(*(HighResolutionModule(widths, blocks) for _ in range(repeats))))
            previous = widths
        self.out_channels = previous

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        branches = [self.layer1(x)]
        for transition, stage in ((self.transition1, self.stage2), (self.transition2, self.stage3),
                                  (self.transition3, self.stage4)):
            branches = stage(transition(branches))
        return branches


class HRNetV2Head(nn.Module):
    """Concatenate all branches at the highest resolution, 1x1 conv-BN-ReLU, 1x1 classifier."""

    def __init__(self, in_channels: list[int], num_classes: int):
        super().__init__()
        width = sum(in_channels)
        self.last_layer = nn.Sequential(
            nn.Conv2d(width, width, 1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, num_classes, 1),
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:  # -> (B, K, H/4, W/4)
        """The official head, reassociated: the same function with its widest conv at the branches' resolutions.

        Officially the branches are upsampled to stride 4, concatenated and fused by a
        ``15C -> 15C`` 1x1 conv. That conv is the sum of its column blocks applied to each
        branch, and a 1x1 conv commutes with bilinear upsampling (both are linear; the
        upsampling weights sum to one): so each branch goes through its block at its own
        resolution (1/4, 1/16, 1/64 of the pixels) and the results are upsampled and summed,
        about 8x fewer multiply-adds in that layer. Same parameters and checkpoints; outputs
        equal to float rounding (``tests/engine/test_models.py``).
        """
        fuse, batch_norm, relu, classifier = self.last_layer
        assert isinstance(fuse, nn.Conv2d)
        blocks = fuse.weight.split([feature.shape[1] for feature in features], dim=1)
        fused = F.conv2d(features[0], blocks[0], fuse.bias)
        for feature, block in zip(features[1:], blocks[1:], strict=True):
            fused = fused + upsample_to(F.conv2d(feature, block), features[0])
        return classifier(relu(batch_norm(fused)))


class HRNetV2(SegmentationModel):
    def __init__(self, num_classes: int, width: int, stage1_blocks: int, modules: tuple[int, int, int], blocks: int):
        encoder = HRNetEncoder(width, stage1_blocks, modules, blocks)
        super().__init__(encoder, HRNetV2Head(encoder.out_channels, num_classes))


PAPER = "Wang et al., TPAMI 2020, arXiv:1908.07919"
#: bench/memory_format.py (CPU, 256x256, batch 2, one thread): channels_last trains in 0.75-0.88 and infers in
#: 0.77-0.92 of the contiguous time (docs/models.md, "Memory format"); many small branch convolutions.
MEMORY_FORMAT = "channels_last"


@register_model("hrnetv2_w18_small", family="HRNetV2", paper=PAPER, memory_format=MEMORY_FORMAT)
def hrnetv2_w18_small(num_classes: int) -> HRNetV2:
    """W18-Small-v2 of the official configs."""
    return HRNetV2(num_classes, width=18, stage1_blocks=2, modules=(1, 3, 2), blocks=2)


@register_model("hrnetv2_w18", family="HRNetV2", paper=PAPER, memory_format=MEMORY_FORMAT)
def hrnetv2_w18(num_classes: int) -> HRNetV2:
    return HRNetV2(num_classes, width=18, stage1_blocks=4, modules=(1, 4, 3), blocks=4)


@register_model("hrnetv2_w48", family="HRNetV2", paper=PAPER, memory_format=MEMORY_FORMAT)
def hrnetv2_w48(num_classes: int) -> HRNetV2:
    return HRNetV2(num_classes, width=48, stage1_blocks=4, modules=(1, 4, 3), blocks=4)
