"""Augmentations in torch, with image and mask kept aligned.

Geometry (scale, crop, flip) is applied to the image and mask together; photometric
strong augmentation (colour jitter, grayscale, blur) only to the image, as in UniMatch
(Yang et al., CVPR 2023, github.com/LiheYoung/UniMatch `dataset/transform.py`:
scale 0.5-2.0, jitter 0.5/0.5/0.5/0.25 with p=0.8, grayscale p=0.2, blur p=0.5).
Images travel as uint8 (3, H, W) until ``normalize``.
"""
from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

IGNORE_INDEX = 255
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def random_scale(image: torch.Tensor, mask: torch.Tensor, low: float = 0.5, high: float = 2.0,
                 rng: random.Random | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    rng = rng or random
    factor = rng.uniform(low, high)
    height, width = image.shape[-2:]
    size = (max(1, int(height * factor + 0.5)), max(1, int(width * factor + 0.5)))
    image = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    mask = F.interpolate(mask[None, None].float(), size=size, mode="nearest")[0, 0]
    return image.round().clamp(0, 255).to(torch.uint8), mask.to(torch.uint8)


def pad_to(image: torch.Tensor, mask: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    height, width = image.shape[-2:]
    pad_h, pad_w = max(0, size - height), max(0, size - width)
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), value=0)
        mask = F.pad(mask, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)
    return image, mask


def random_crop(image: torch.Tensor, mask: torch.Tensor, size: int,
                rng: random.Random | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop ``size`` x ``size``, padding with the ignore label where the image is smaller."""
    rng = rng or random
    image, mask = pad_to(image, mask, size)
    height, width = image.shape[-2:]
    top, left = rng.randint(0, height - size), rng.randint(0, width - size)
    return image[:, top:top + size, left:left + size], mask[top:top + size, left:left + size]


def random_hflip(image: torch.Tensor, mask: torch.Tensor, p: float = 0.5,
                 rng: random.Random | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    if (rng or random).random() < p:
        return image.flip(-1), mask.flip(-1)
    return image, mask


def _blend(a: torch.Tensor, b: torch.Tensor | float, ratio: float) -> torch.Tensor:
    return (ratio * a + (1 - ratio) * b).clamp(0, 255)


def _grayscale(image: torch.Tensor) -> torch.Tensor:
    r, g, b = image.unbind(0)
    return (0.299 * r + 0.587 * g + 0.114 * b).expand(3, -1, -1)


def color_jitter(image: torch.Tensor, brightness: float = 0.5, contrast: float = 0.5, saturation: float = 0.5,
                 hue: float = 0.25, rng: random.Random | None = None) -> torch.Tensor:
    """Brightness, contrast, saturation and hue in random order (as torchvision does)."""
    rng = rng or random
    image = image.float()
    operations = ["brightness", "contrast", "saturation", "hue"]
    rng.shuffle(operations)
    for operation in operations:
        if operation == "brightness":
            image = _blend(image, 0.0, rng.uniform(1 - brightness, 1 + brightness))
        elif operation == "contrast":
            image = _blend(image, _grayscale(image).mean(), rng.uniform(1 - contrast, 1 + contrast))
        elif operation == "saturation":
            image = _blend(image, _grayscale(image), rng.uniform(1 - saturation, 1 + saturation))
        else:
            image = _shift_hue(image, rng.uniform(-hue, hue))
    return image.round().to(torch.uint8)


def _shift_hue(image: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate the hue by ``shift`` turns, through a rotation about the grey axis in RGB."""
    angle = shift * 2 * math.pi
    cos, sin = math.cos(angle), math.sin(angle)
    k = 1 / 3
    s = math.sqrt(k)
    rotation = torch.tensor([
        [cos + (1 - cos) * k, k * (1 - cos) - s * sin, k * (1 - cos) + s * sin],
        [k * (1 - cos) + s * sin, cos + k * (1 - cos), k * (1 - cos) - s * sin],
        [k * (1 - cos) - s * sin, k * (1 - cos) + s * sin, cos + k * (1 - cos)],
    ])
    return torch.einsum("ij,jhw->ihw", rotation, image).clamp(0, 255)


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    padded = F.pad(image.float()[None], (radius, radius, radius, radius), mode="replicate")
    padded = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    padded = F.conv2d(padded, kernel.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    return padded[0].round().clamp(0, 255).to(torch.uint8)


def strong_photometric(image: torch.Tensor, rng: random.Random | None = None) -> torch.Tensor:
    """UniMatch's strong view: jitter (p=0.8), grayscale (p=0.2), blur sigma 0.1-2 (p=0.5)."""
    rng = rng or random
    if rng.random() < 0.8:
        image = color_jitter(image, rng=rng)
    if rng.random() < 0.2:
        image = _grayscale(image.float()).round().to(torch.uint8)
    if rng.random() < 0.5:
        image = gaussian_blur(image, rng.uniform(0.1, 2.0))
    return image


def cutmix_box(size: int, p: float = 0.5, area: tuple[float, float] = (0.02, 0.4),
               ratio: tuple[float, float] = (0.3, 1 / 0.3), rng: random.Random | None = None) -> torch.Tensor:
    """A (size, size) 0/1 box mask, all zeros with probability 1 - p (UniMatch's defaults)."""
    rng = rng or random
    mask = torch.zeros(size, size)
    if rng.random() > p:
        return mask
    while True:
        box_area = rng.uniform(*area) * size * size
        aspect = rng.uniform(*ratio)
        width, height = int(math.sqrt(box_area / aspect)), int(math.sqrt(box_area * aspect))
        x, y = rng.randint(0, size), rng.randint(0, size)
        if 0 < width and 0 < height and x + width <= size and y + height <= size:
            break
    mask[y:y + height, x:x + width] = 1
    return mask


def normalize(image: torch.Tensor) -> torch.Tensor:
    """uint8 (3, H, W) -> float, ImageNet mean/std (what pretrained backbones expect)."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (image.float() / 255 - mean) / std


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """float normalised (3, H, W) -> uint8, for overlays."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(3, 1, 1)
    return ((image * std + mean) * 255).round().clamp(0, 255).to(torch.uint8)
