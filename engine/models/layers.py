"""Blocks shared by several architectures (kept here once)."""
from __future__ import annotations

import torch
from torch import nn

from engine.models.resize import bilinear_resize


class ConvBNReLU(nn.Sequential):
    """Conv -> BatchNorm -> ReLU, padding chosen to keep the size at stride 1."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1):
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ConvBN(nn.Sequential):
    """Conv -> BatchNorm without an activation: the projections that are summed before a ReLU
    (HRNet's fusion paths, DDRNet's bilateral compression and down-sampling)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, bias=False),
            nn.BatchNorm2d(out_channels),
        )


def upsample_to(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of ``x`` to the spatial size of ``reference`` (no-op when equal).

    Resizing to the other tensor's actual size, never to ``input // stride``, is what makes
    every architecture work at input sizes that are not multiples of its output stride.
    """
    return bilinear_resize(x, reference.shape[-2:])


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling module (Zhao et al. 2017).

    Each bin size ``b`` average-pools the map to ``b x b``, reduces it to
    ``in_channels / len(bins)`` channels with a 1x1 conv-BN-ReLU and upsamples it back;
    the output concatenates the input with every pooled branch.
    """

    def __init__(self, in_channels: int, bins: tuple[int, ...] = (1, 2, 3, 6)):
        super().__init__()
        reduced = in_channels // len(bins)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(bin_size), ConvBNReLU(in_channels, reduced, kernel_size=1))
            for bin_size in bins
        )
        self.out_channels = in_channels + reduced * len(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, *(upsample_to(stage(x), x) for stage in self.stages)], dim=1)


class ImagePooling(nn.Sequential):
    """Global average pooling -> 1x1 conv-BN-ReLU, broadcast back to the input size (DeepLabV3)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.AdaptiveAvgPool2d(1), ConvBNReLU(in_channels, out_channels, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).expand(-1, -1, *x.shape[-2:])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with image pooling (Chen et al. 2017, DeepLabV3, arXiv:1706.05587).

    One 1x1 branch, one 3x3 branch per atrous rate and an image-pooling branch, each
    ``out_channels`` wide, concatenated and projected back to ``out_channels`` by a 1x1
    conv-BN-ReLU.
    """

    def __init__(self, in_channels: int, rates: tuple[int, ...], out_channels: int = 256):
        super().__init__()
        self.branches = nn.ModuleList(
            [ConvBNReLU(in_channels, out_channels, kernel_size=1)]
            + [ConvBNReLU(in_channels, out_channels, dilation=rate) for rate in rates]
            + [ImagePooling(in_channels, out_channels)]
        )
        self.project = ConvBNReLU(out_channels * len(self.branches), out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.branches], dim=1))


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop a residual branch per sample while training."""

    def __init__(self, probability: float = 0.0):
        super().__init__()
        self.probability = probability

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.probability == 0.0:
            return x
        keep = 1.0 - self.probability
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"probability={self.probability}"
