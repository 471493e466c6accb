"""DDRNet's Deep Aggregation Pyramid Pooling Module against the paper (Hong et al. 2021, arXiv:2101.06085)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.models import build_model, count_parameters
from engine.models.ddrnet import DAPPM

pytestmark = pytest.mark.usefixtures("single_thread")  # the shared 2-core CI machine

#: DDRNet-23-slim: DAPPM on the 512-channel stride-64 map, 128 channels per scale, 128 out.
SLIM_DAPPM = dict(in_channels=512, branch_channels=128, out_channels=128)
SLIM_DAPPM_PARAMETERS = 1_073_408  # "about 1.07 M", docs/models.md


def is_bn_relu_conv(sequence: nn.Sequential, kernel_size: int) -> bool:
    kinds = [type(layer) for layer in sequence]
    return kinds[-3:] == [nn.BatchNorm2d, nn.ReLU, nn.Conv2d] and sequence[-1].kernel_size == (kernel_size, kernel_size)


def test_five_scales_pool_with_the_papers_kernels_and_strides():
    dappm = DAPPM(**SLIM_DAPPM)

    pools = [(dappm.scale1[0], 5, 2), (dappm.scale2[0], 9, 4), (dappm.scale3[0], 17, 8)]

    assert all(isinstance(pool, nn.AvgPool2d) and (pool.kernel_size, pool.stride) == (k, s) for pool, k, s in pools)
    assert isinstance(dappm.scale4[0], nn.AdaptiveAvgPool2d) and dappm.scale4[0].output_size == 1
    assert is_bn_relu_conv(dappm.scale0, 1) and len(dappm.scale0) == 3  # identity scale: no pooling
    assert all(is_bn_relu_conv(getattr(dappm, f"scale{index}"), 1) for index in range(1, 5))


def test_pooled_scales_are_fused_by_3x3_convs_then_concatenated_compressed_and_shortcut():
    dappm = DAPPM(**SLIM_DAPPM)

    assert all(is_bn_relu_conv(getattr(dappm, f"process{index}"), 3) for index in range(1, 5))
    assert is_bn_relu_conv(dappm.compression, 1) and dappm.compression[-1].in_channels == 5 * 128
    assert is_bn_relu_conv(dappm.shortcut, 1) and dappm.shortcut[-1].in_channels == 512


def test_forward_is_the_hierarchical_residual_fusion_of_the_paper():
    torch.manual_seed(0)
    dappm = DAPPM(in_channels=16, branch_channels=8, out_channels=12)
    for module in dappm.modules():
        if isinstance(module, nn.BatchNorm2d):  # non-trivial statistics so the check means something
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    dappm.eval()
    x = torch.randn(2, 16, 13, 9)

    def up(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, size=x.shape[-2:], mode="bilinear", align_corners=False)

    with torch.no_grad():
        y = [dappm.scale0(x)]
        for index in range(1, 5):
            y.append(getattr(dappm, f"process{index}")(up(getattr(dappm, f"scale{index}")(x)) + y[-1]))
        expected = dappm.compression(torch.cat(y, dim=1)) + dappm.shortcut(x)
        actual = dappm(x)

    assert actual.shape == (2, 12, 13, 9)
    torch.testing.assert_close(actual, expected)


def test_global_scale_lets_one_pixel_reach_the_whole_map():
    torch.manual_seed(0)
    dappm = DAPPM(in_channels=4, branch_channels=4, out_channels=4).eval()
    x = torch.randn(1, 4, 40, 40)
    changed = x.clone()
    changed[..., 0, 0] += 10.0

    with torch.no_grad():
        difference = (dappm(changed) - dappm(x)).abs()

    assert difference[..., -1, -1].sum() > 0  # 17x17 pools alone would not reach the far corner


def test_slim_dappm_has_about_1_07_million_parameters():
    model = build_model("ddrnet23_slim", 19)

    assert count_parameters(model.decoder.spp) == SLIM_DAPPM_PARAMETERS
    assert SLIM_DAPPM_PARAMETERS / 1e6 == pytest.approx(1.07, abs=0.005)
