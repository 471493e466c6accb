"""Augmentations in torch, with image and mask kept aligned.

Per-sample transforms (run in loader workers) take uint8 images (3, H, W) and uint8 masks
(H, W). The crop is chosen before resizing, so only crop-sized pixels are ever resized,
and geometry stays in uint8 (a float copy of a full image costs more than most
operations on it); each view goes to float once, with the colour operations and the
normalisation fused into one pass. Geometry (scale, crop, flip) moves image
and mask together; photometric strong augmentation (colour jitter, grayscale, blur) only
touches the image.

Defaults follow UniMatch (Yang et al., CVPR 2023, arXiv:2208.09910,
github.com/LiheYoung/UniMatch ``dataset/transform.py`` and ``dataset/semi.py``): scale
0.5-2.0, crop padded with the ignore label (255), horizontal flip p=0.5; the strong view
is colour jitter 0.5/0.5/0.5/0.25 with p=0.8, grayscale p=0.2, Gaussian blur sigma
0.1-2.0 px with p=0.5 (by default scaled to the crop, ``blur_sigma``), and a CutMix box
(p=0.5, area 2-40%, aspect 0.3-1/0.3).

Batch masks for semi-supervised mixing (``cutmix_boxes``, ``classmix_mask``) work on
device tensors, so methods build them where the predictions live.
"""
from __future__ import annotations

import math
import random
from collections.abc import MutableSequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from engine.data.masks import IGNORE_INDEX


class RandomSource(Protocol):
    """What the transforms draw from: a ``random.Random``, or the ``random`` module itself (the
    default, seeded per item by ``engine.sampling``)."""

    def random(self) -> float: ...

    def uniform(self, a: float, b: float) -> float: ...

    def randint(self, a: int, b: int) -> int: ...

    def shuffle(self, x: MutableSequence[Any]) -> None: ...

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: ITU-R 601 luma weights, as torchvision's ``rgb_to_grayscale`` and PIL's convert("L").
LUMA = (0.299, 0.587, 0.114)


def random_scale_crop(image: torch.Tensor, mask: torch.Tensor, size: int, low: float = 0.5, high: float = 2.0,
                      rng: RandomSource | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """UniMatch's "resize by a factor in [low, high], pad with ignore, random crop", done cheaply.

    Instead of resizing the whole image and then cropping, the crop's window is chosen in
    the source (``size / factor`` pixels square) and only that window is resized, so a 2x
    scale of a 2048x1024 image costs a 512x512 resize. Image (bilinear, antialiased when
    shrinking, as PIL's BILINEAR) and mask (nearest) map the same integer window to the
    same output size, so they stay aligned pixel for pixel. Where the scaled image is
    smaller than the crop, the bottom/right is padded: image 0, mask 255.

    Returns the uint8 (3, size, size) image, the uint8 (size, size) mask and ``padding``
    (bool, True outside the image), which the unlabelled loss needs since an unlabelled
    mask cannot carry it.
    """
    rng = rng or random
    factor = rng.uniform(low, high)
    height, width = image.shape[-2:]
    window = max(1, round(size / factor))  # source pixels that scale to the crop side
    top = rng.randint(0, max(0, height - window))
    left = rng.randint(0, max(0, width - window))
    rows, cols = slice(top, min(height, top + window)), slice(left, min(width, left + window))
    source_h, source_w = rows.stop - rows.start, cols.stop - cols.start
    out_h = min(size, max(1, round(source_h * size / window)))
    out_w = min(size, max(1, round(source_w * size / window)))
    # uint8 channels-last is torch's fast resize path (several times faster than float).
    crop = image[None, :, rows, cols].contiguous(memory_format=torch.channels_last)
    crop = F.interpolate(crop, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=window > size)[0]
    crop_mask = F.interpolate(mask[None, None, rows, cols], size=(out_h, out_w), mode="nearest-exact")[0, 0]
    padding = torch.ones(size, size, dtype=torch.bool)
    padding[:out_h, :out_w] = False
    if out_h < size or out_w < size:
        crop = F.pad(crop, (0, size - out_w, 0, size - out_h), value=0)
        crop_mask = F.pad(crop_mask, (0, size - out_w, 0, size - out_h), value=IGNORE_INDEX)
    return crop, crop_mask, padding


def random_hflip(*tensors: torch.Tensor, p: float = 0.5, rng: RandomSource | None = None) -> tuple[torch.Tensor, ...]:
    """Flip all of them (image, mask, padding...) together, or none."""
    if (rng or random).random() < p:
        return tuple(t.flip(-1) for t in tensors)
    return tensors


# The strong view's colour operations (brightness, contrast, saturation, hue, grayscale)
# are all affine maps of RGB, so they are composed into one 3x3 matrix and offset in the
# sampled order and applied to the crop in a single pass, with the ImageNet normalisation
# folded in. torchvision clamps to [0, 255] after each step; here the clamp comes once,
# at the end, which only differs where an intermediate step overflowed.

def _blend_matrix(ratio: float, toward: torch.Tensor) -> torch.Tensor:
    """The matrix of ``ratio * x + (1 - ratio) * toward @ x`` (toward: 3x3)."""
    return ratio * torch.eye(3) + (1 - ratio) * toward


def _hue_matrix(shift: float) -> torch.Tensor:
    """Rotate the hue by ``shift`` turns: a rotation about the grey (1, 1, 1) axis of RGB.

    torchvision shifts H in HSV; the rotation moves hue the same way without leaving
    the linear world (it keeps grey grey and luma nearly unchanged).
    """
    angle = shift * 2 * math.pi
    cos, sin = math.cos(angle), math.sin(angle)
    k, s = 1 / 3, math.sqrt(1 / 3)
    return torch.tensor([
        [cos + (1 - cos) * k, k * (1 - cos) - s * sin, k * (1 - cos) + s * sin],
        [k * (1 - cos) + s * sin, cos + k * (1 - cos), k * (1 - cos) - s * sin],
        [k * (1 - cos) - s * sin, k * (1 - cos) + s * sin, cos + k * (1 - cos)],
    ])


def color_transform(mean_rgb: torch.Tensor, brightness: float = 0.5, contrast: float = 0.5, saturation: float = 0.5,
                    hue: float = 0.25, jitter_p: float = 0.8, grayscale_p: float = 0.2,
                    rng: RandomSource | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(3x3 matrix, 3-vector offset) of torchvision's ColorJitter (random order, p=jitter_p)
    followed by RandomGrayscale (p=grayscale_p), for an image whose mean colour is ``mean_rgb``.

    Contrast blends toward the mean grey of the image as it is at that step; since every
    step is affine, that mean follows from ``mean_rgb`` without touching the pixels.
    """
    rng = rng or random
    luma = torch.tensor(LUMA).view(1, 3)
    to_gray = luma.expand(3, 3)
    matrix, offset = torch.eye(3), torch.zeros(3)
    if rng.random() < jitter_p:
        operations = ["brightness", "contrast", "saturation", "hue"]
        rng.shuffle(operations)
        for operation in operations:
            if operation == "brightness":
                step, shift = rng.uniform(max(0.0, 1 - brightness), 1 + brightness) * torch.eye(3), torch.zeros(3)
            elif operation == "contrast":
                ratio = rng.uniform(max(0.0, 1 - contrast), 1 + contrast)
                grey = float(luma @ (matrix @ mean_rgb + offset))
                step, shift = ratio * torch.eye(3), torch.full((3,), (1 - ratio) * grey)
            elif operation == "saturation":
                step = _blend_matrix(rng.uniform(max(0.0, 1 - saturation), 1 + saturation), to_gray)
                shift = torch.zeros(3)
            else:
                step, shift = _hue_matrix(rng.uniform(-hue, hue)), torch.zeros(3)
            matrix, offset = step @ matrix, step @ offset + shift
    if rng.random() < grayscale_p:
        matrix, offset = to_gray @ matrix, to_gray @ offset
    return matrix, offset


def _normalisation(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, 1 / std) of the ImageNet normalisation in 0-255 units, (3,) on ``device``."""
    return torch.tensor(IMAGENET_MEAN, device=device) * 255, 1 / (torch.tensor(IMAGENET_STD, device=device) * 255)


def apply_color(image: torch.Tensor, matrix: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """uint8 (3, H, W) -> normalised float (3, H, W) of ``clamp(matrix @ rgb + offset, 0, 255)``."""
    matrix, offset = matrix.to(image.device), offset.to(image.device)
    mean, scale = (value.view(3, 1) for value in _normalisation(image.device))
    height, width = image.shape[-2:]
    # Fold the normalisation in: clamp to where 0 and 255 land after it.
    out = torch.addmm((offset.view(3, 1) - mean) * scale, matrix * scale, image.reshape(3, -1).float())
    return out.clamp_(min=(-mean * scale), max=(255 - mean) * scale).view(3, height, width)


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a float (C, H, W) image, radius 3 sigma, edges replicated.

    The two passes are sums of shifted slices, which on the CPU beat a depthwise conv2d
    and PIL's GaussianBlur (UniMatch's ``blur``) by about 3x for UniMatch's sigmas 0.1-2.
    """
    weights = gaussian_kernel(sigma).tolist()
    radius = len(weights) // 2
    height, width = image.shape[-2:]
    padded = F.pad(image[None], (radius, radius, radius, radius), mode="replicate")[0]
    rows = torch.zeros(image.shape[0], height + 2 * radius, width, device=image.device)
    for i, weight in enumerate(weights):
        rows.add_(padded[:, :, i:i + width], alpha=weight)
    out = torch.zeros_like(image)
    for i, weight in enumerate(weights):
        out.add_(rows[:, i:i + height, :], alpha=weight)
    return out


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """The normalised taps of ``gaussian_blur``: radius 3 sigma (at least 1), float32."""
    radius = max(1, int(3 * sigma + 0.5))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    return kernel / kernel.sum()


#: UniMatch's blur (``dataset/transform.py``: PIL GaussianBlur, radius = sigma, drawn in 0.1-2.0 px)
#: and the crop it was set for (``configs/pascal.yaml``: ``crop_size`` 321).
BLUR_SIGMA, BLUR_REFERENCE_CROP = (0.1, 2.0), 321
BLUR_MODES = ("crop", "pixels")


def blur_sigma(mode: str, crop_size: int) -> tuple[float, float]:
    """The strong view's blur range: ``pixels`` is UniMatch's 0.1-2.0 px; ``crop`` scales it by
    ``crop_size / 321``, the same blur relative to the image.

    Why: a sigma of 2 px is 0.6% of a 321 px Pascal crop but 3% of a 64 px canvas, where it
    smears a 20 px garment into its background: the
    strong view then carries labels for objects it no longer shows, and on 16 labelled canvases
    UniMatch's pseudo-labels collapse to background.
    """
    if mode not in BLUR_MODES:
        raise ValueError(f"strong_blur must be one of {', '.join(BLUR_MODES)}; got {mode!r}")
    if mode == "pixels":
        return BLUR_SIGMA
    scale = crop_size / BLUR_REFERENCE_CROP
    return BLUR_SIGMA[0] * scale, BLUR_SIGMA[1] * scale


def strong_view(image: torch.Tensor, blur_p: float = 0.5, sigma: tuple[float, float] = BLUR_SIGMA,
                rng: RandomSource | None = None) -> torch.Tensor:
    """UniMatch's strong view of a uint8 crop, normalised: colour jitter 0.5/0.5/0.5/0.25
    (p=0.8), grayscale (p=0.2), Gaussian blur of a sigma drawn in ``sigma`` (p=0.5; see
    ``blur_sigma``)."""
    return apply_strong_view(image, *draw_strong_view(image, blur_p, sigma, rng))


def draw_strong_view(image: torch.Tensor, blur_p: float = 0.5, sigma: tuple[float, float] = BLUR_SIGMA,
                     rng: RandomSource | None = None) -> tuple[torch.Tensor, float]:
    """The random part of ``strong_view``: its colour map as one (3, 4) tensor (matrix, then the
    offset column) and its blur sigma (0: no blur). Cheap, so a loader worker draws it and the
    pixels are computed where the batch goes (``apply_strong_view``)."""
    rng = rng or random
    mean_rgb = image.reshape(3, -1).float().mean(1)
    matrix, offset = color_transform(mean_rgb, rng=rng)
    blur = rng.uniform(*sigma) if rng.random() < blur_p else 0.0
    return torch.cat([matrix, offset[:, None]], dim=1), blur


def apply_strong_view(image: torch.Tensor, color: torch.Tensor, blur: float) -> torch.Tensor:
    """uint8 (3, H, W) -> the normalised strong view that ``draw_strong_view``'s draws describe."""
    view = apply_color(image, color[:, :3], color[:, 3])
    if blur > 0:
        # Blur is linear with unit gain, so blurring after normalising equals normalising after.
        view = gaussian_blur(view, blur)
    return view


def apply_strong_views(images: torch.Tensor | list[torch.Tensor], colors: torch.Tensor,
                       blurs: list[float]) -> torch.Tensor:
    """A batch of ``apply_strong_view``: B uint8 (3, H, W) images (a tensor or a list), colour maps
    (B, 3, 4), one blur sigma per image (0: none) -> normalised float (B, 3, H, W), computed on
    the images' device.

    On the CPU, one image at a time, with the operations ``apply_strong_view`` runs in a loader
    worker (the same bits, given each image in the strides it had there: hence the list).
    Elsewhere in a few batched kernels: a per-image loop would launch about 80 small GPU
    kernels per blurred view. The two agree to float rounding (``tests/engine/test_data_transforms.py``).
    """
    if images[0].device.type == "cpu":
        return torch.stack([apply_strong_view(image, color, blur) for image, color, blur in zip(images, colors, blurs,
                                                                                            strict=True)])
    return strong_views_batched(torch.stack(images) if isinstance(images, list) else images, colors, blurs)


def strong_views_batched(images: torch.Tensor, colors: torch.Tensor, blurs: list[float]) -> torch.Tensor:
    """``apply_strong_views`` off the CPU: one batched matrix product for the colour maps, then
    ``gaussian_blurs``."""
    mean, scale = (value.view(1, 3, 1) for value in _normalisation(images.device))
    batch, _, height, width = images.shape
    colors = colors.to(images.device, torch.float32)
    views = torch.baddbmm((colors[:, :, 3:] - mean) * scale, colors[:, :, :3] * scale,
                          images.reshape(batch, 3, -1).float())
    views = torch.maximum(torch.minimum(views, (255 - mean) * scale), -mean * scale).view(batch, 3, height, width)
    return gaussian_blurs(views, blurs)


def gaussian_blurs(views: torch.Tensor, sigmas: list[float]) -> torch.Tensor:
    """``gaussian_blur`` of each float (3, H, W) view of a batch with its own sigma (0: unchanged),
    as two grouped convolutions: every view's taps are padded with zeros to the widest radius,
    so one kernel size serves the batch, and the wider replicate padding is only read by taps
    of weight 0."""
    own = [gaussian_kernel(sigma) if sigma > 0 else torch.ones(1) for sigma in sigmas]  # ones(1): unchanged
    radius = max(len(kernel) // 2 for kernel in own)
    if radius == 0:
        return views
    taps = [F.pad(kernel, (radius - len(kernel) // 2,) * 2) for kernel in own]
    batch, channels, height, width = views.shape
    kernels = torch.stack(taps).to(views.device).repeat_interleave(channels, dim=0)  # (B * C, 2r + 1)
    padded = F.pad(views, (radius, radius, radius, radius), mode="replicate").reshape(1, batch * channels,
                                                                                     height + 2 * radius, -1)
    rows = F.conv2d(padded, kernels[:, None, None, :], groups=batch * channels)
    blurred = F.conv2d(rows, kernels[:, None, :, None], groups=batch * channels)
    return blurred.view(batch, channels, height, width)


def _box(height: int, width: int, area: tuple[float, float], ratio: tuple[float, float],
         rng: RandomSource) -> tuple[int, int, int, int]:
    """UniMatch's ``obtain_cutmix_box`` sampling: an area share and aspect, then a position that fits."""
    box_area = rng.uniform(*area) * height * width
    while True:
        aspect = rng.uniform(*ratio)
        box_w, box_h = int(math.sqrt(box_area / aspect)), int(math.sqrt(box_area * aspect))
        x, y = rng.randint(0, width), rng.randint(0, height)
        if 0 < box_w and 0 < box_h and x + box_w <= width and y + box_h <= height:
            return y, x, box_h, box_w


def cutmix_box(size: int, p: float = 0.5, area: tuple[float, float] = (0.02, 0.4),
               ratio: tuple[float, float] = (0.3, 1 / 0.3), rng: RandomSource | None = None) -> torch.Tensor:
    """A (size, size) 0/1 float box mask, all zeros with probability 1 - p (UniMatch's defaults).

    CutMix: Yun et al., ICCV 2019, arXiv:1905.04899; for segmentation consistency,
    French et al., BMVC 2020, arXiv:1906.01916.
    """
    rng = rng or random
    mask = torch.zeros(size, size)
    if rng.random() > p:
        return mask
    y, x, h, w = _box(size, size, area, ratio, rng)
    mask[y:y + h, x:x + w] = 1
    return mask


def cutout(image: torch.Tensor, mask: torch.Tensor | None = None, p: float = 0.5,
           area: tuple[float, float] = (0.02, 0.4), ratio: tuple[float, float] = (0.3, 1 / 0.3),
           fill: int = 0, rng: RandomSource | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """CutOut (DeVries and Taylor, 2017, arXiv:1708.04552): erase a box of the image.

    The box is sampled like a CutMix box; the mask, when given, is set to the ignore
    label there, so no loss asks the model to see through the erased region.
    """
    rng = rng or random
    if rng.random() > p:
        return image, mask
    y, x, h, w = _box(image.shape[-2], image.shape[-1], area, ratio, rng)
    image = image.clone()
    image[:, y:y + h, x:x + w] = fill
    if mask is not None:
        mask = mask.clone()
        mask[y:y + h, x:x + w] = IGNORE_INDEX
    return image, mask


def cutmix_boxes(batch: int, height: int, width: int, p: float = 0.5, area: tuple[float, float] = (0.02, 0.4),
                 ratio: tuple[float, float] = (0.3, 1 / 0.3), device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, H, W) 0/1 float CutMix boxes made on ``device`` in one go.

    Same area and aspect ranges as ``cutmix_box``; instead of UniMatch's rejection loop
    the box is clipped to the image and its corner drawn among the positions that fit.
    """
    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(batch, device=device, generator=generator)

    box_area = uniform(*area) * height * width
    aspect = uniform(*ratio)
    box_w = (box_area / aspect).sqrt().floor().clamp(1, width)
    box_h = (box_area * aspect).sqrt().floor().clamp(1, height)
    x = (uniform(0.0, 1.0) * (width - box_w + 1)).floor()
    y = (uniform(0.0, 1.0) * (height - box_h + 1)).floor()
    cols = torch.arange(width, device=device).view(1, 1, width)
    rows = torch.arange(height, device=device).view(1, height, 1)
    inside = ((cols >= x.view(-1, 1, 1)) & (cols < (x + box_w).view(-1, 1, 1))
              & (rows >= y.view(-1, 1, 1)) & (rows < (y + box_h).view(-1, 1, 1)))
    apply = torch.rand(batch, device=device, generator=generator) < p
    return (inside & apply.view(-1, 1, 1)).float()


def classmix_mask(prediction: torch.Tensor, num_classes: int | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """ClassMix masks: per image, the pixels of a random half of the classes it contains.

    ClassMix (Olsson et al., WACV 2021, arXiv:2007.07936; github.com/WilhelmT/ClassMix
    ``generate_class_mask``): of the C classes present in the argmax prediction,
    ``(C + C % 2) / 2`` are chosen, i.e. half, rounded up. ``prediction`` is (B, H, W)
    long on any device; values >= ``num_classes`` (the ignore label) are never chosen.
    Returns (B, H, W) float 0/1 on the same device.
    """
    batch = prediction.shape[0]
    flat = prediction.reshape(batch, -1).long()
    num_classes = num_classes or int(flat.max()) + 1
    valid = flat < num_classes
    slots = torch.where(valid, flat, torch.full_like(flat, num_classes))  # one spare slot for invalid pixels
    present = torch.zeros(batch, num_classes + 1, dtype=torch.bool, device=flat.device)
    present.scatter_(1, slots, True)
    present[:, num_classes] = False
    # Random scores, absent classes pushed last: the first ceil(C/2) by rank are chosen.
    scores = torch.rand(batch, num_classes + 1, device=flat.device, generator=generator)
    scores = scores.masked_fill(~present, 2.0)
    rank = scores.argsort(1).argsort(1)
    count = present.sum(1, keepdim=True)
    chosen = (rank < (count + 1) // 2) & present
    return chosen.gather(1, slots).view_as(prediction).float()


def normalize(image: torch.Tensor) -> torch.Tensor:
    """uint8 (3, H, W) or (B, 3, H, W) -> float, ImageNet mean/std (what pretrained backbones expect)."""
    mean, scale = (value.view(3, 1, 1) for value in _normalisation(image.device))
    return torch.addcmul(-mean * scale, image.float(), scale)


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """float normalised (3, H, W) -> uint8: ``normalize`` undone, to read a view's colours back."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(3, 1, 1)
    return ((image * std + mean) * 255).round().clamp(0, 255).to(torch.uint8)
