"""Bilinear resizing (``align_corners=False``) with a fast gradient for whole-number upscaling.

Every architecture here upsamples: the logits from 1/4 or 1/8 of the input to the labels'
size for the loss, and DDRNet's and HRNet's low-resolution branches to the high one. PyTorch's
CPU kernel for the gradient of ``F.interpolate(mode="bilinear")`` on the contiguous layout
scatters every output pixel's gradient into its four sources one pixel at a time: resizing
DDRNet-23-slim's 19 logits at 1/8 of a 256x256 pair took 13.1 ms forward and backward, of
which the forward was 3.6 (torch 2.13 CPU, one thread), and a training step does it twice
(main and auxiliary head).

Where the output side is a whole multiple ``s`` of the input side, resizing one axis is a
fixed stencil: with the input padded by its edge values (which is what PyTorch's clamping of
source coordinates at the borders computes), output ``s*k + r`` mixes padded inputs ``k``,
``k + 1`` and ``k + 2`` with weights that depend on ``r`` only. Its gradient is then one
small matrix product over each block of ``s`` outputs and three shifted sums, separable over
the two axes: a pass over the gradient instead of a scatter. The forward stays PyTorch's
kernel; the gradient equals PyTorch's up to the order of the additions (tests compare the
two). The same resize took 6.6 ms this way, and DDRNet's training steps 0.94-0.96 of their
time (``bench/resize.py``, docs/benchmarks.md). Other ratios, tensors in the channels_last
layout (whose PyTorch kernel is the fast one) and every resize on other devices (not
measured) use PyTorch's gradient.

Equal up to rounding is not equal to the last digit, and a 3000-step run from scratch
magnifies the difference: ``SEGLAB_RESIZE_GRADIENT=pytorch`` keeps PyTorch's gradient
everywhere, which is what the stored CPU sweeps ran (``bench/kernels.py`` pins it with the
AVX2 kernels, so that they reproduce).
"""
from __future__ import annotations

import os
from functools import cache

import torch
import torch.nn.functional as F

ENVIRONMENT = "SEGLAB_RESIZE_GRADIENT"
CHOICES = {"stencil": frozenset({"cpu"}), "pytorch": frozenset()}  # -> the devices that take the stencil


def setting() -> str:
    """``SEGLAB_RESIZE_GRADIENT`` (``stencil`` when unset); a ValueError names a malformed value."""
    value = os.environ.get(ENVIRONMENT, "")
    choice = value.strip().lower() or "stencil"
    if choice not in CHOICES:
        raise ValueError(f"{ENVIRONMENT}={value!r}: expected one of {', '.join(CHOICES)}")
    return choice


def stencil_devices() -> frozenset[str]:
    """The devices whose whole-number upscales take the stencil gradient, by ``setting()``."""
    return CHOICES[setting()]


#: Read once, when the engine is imported (a process pins it before, as ``bench/kernels.py`` does).
STENCIL_DEVICES = stencil_devices()


@cache
def _stencil(scale: int) -> torch.Tensor:
    """(scale, 3) weights: output ``s*k + r`` = sum over j of weight[r, j] * padded input[k + j]."""
    weights = torch.zeros(scale, 3, dtype=torch.float64)
    for r in range(scale):
        offset = (r + 0.5) / scale - 0.5  # source coordinate minus k, in (-0.5, 0.5)
        if offset < 0:
            weights[r, 0], weights[r, 1] = -offset, 1 + offset
        else:
            weights[r, 1], weights[r, 2] = 1 - offset, offset
    return weights


def _axis_gradient(grad: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Gradient with respect to the input of a whole-number upscale to ``grad``'s side along
    ``dim`` (-2 or -1 of a contiguous tensor) from ``size``."""
    scale = grad.shape[dim] // size
    weights = _stencil(scale).to(grad.dtype)
    if dim == -2:  # reduce each block of rows along the contiguous last axis
        shares = torch.matmul(weights.t(), grad.unflatten(-2, (size, scale))).unbind(-2)
    else:
        shares = torch.matmul(grad.unflatten(-1, (size, scale)), weights).unbind(-1)
    before, own, after = shares  # to the padded input's k, k + 1, k + 2, i.e. the input's k - 1, k, k + 1
    inner = own.clone(memory_format=torch.contiguous_format)
    inner.narrow(dim, 1, size - 1).add_(after.narrow(dim, 0, size - 1))
    inner.narrow(dim, 0, size - 1).add_(before.narrow(dim, 1, size - 1))
    inner.select(dim, 0).add_(before.select(dim, 0))  # the padding repeats the edges: its share is theirs
    inner.select(dim, -1).add_(after.select(dim, -1))
    return inner


class _BilinearUpscale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        ctx.input_size, ctx.input_dtype = tuple(x.shape[-2:]), x.dtype
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        height, width = ctx.input_size
        result = _axis_gradient(_axis_gradient(grad.contiguous(), -2, height), -1, width)
        return result.to(ctx.input_dtype), None  # autocast may have run the forward in another dtype


def bilinear_resize(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False)``, the same values; on the
    CPU, whole-number upscales take the stencil gradient above. A no-op when the size is equal."""
    size = tuple(size)
    in_size = tuple(x.shape[-2:])
    if in_size == size:
        return x
    whole = all(side > 0 and out % side == 0 for out, side in zip(size, in_size, strict=True))
    if whole and x.requires_grad and x.is_contiguous() and x.device.type in STENCIL_DEVICES:
        return _BilinearUpscale.apply(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
