"""Masks as pictures: colour masks, overlays on the image, and index PNGs with a palette.

Used by ``python -m engine predict`` and by the worker that writes the prediction
masks the experiment page colours in the browser. Colours are the dataset's ``classes.json`` colours
(``"#rrggbb"`` strings or RGB triples); ignored pixels (255) are left uncoloured.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from engine.data.masks import IGNORE_INDEX

#: Colour of ignored pixels in colour masks, and of labels that have no colour.
IGNORE_COLOR = (0, 0, 0)
UNKNOWN_COLOR = (255, 255, 255)

Color = str | Sequence[int]
ArrayLike = np.ndarray | torch.Tensor | Image.Image


def parse_color(color: Color) -> tuple[int, int, int]:
    if isinstance(color, str):
        text = color.lstrip("#")
        if len(text) != 6:
            raise ValueError(f"expected a colour like #e6194b, got {color!r}")
        return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
    red, green, blue = color
    return int(red), int(green), int(blue)


def _lookup_table(colors: Sequence[Color]) -> np.ndarray:
    """(256, 3) uint8: class k -> its colour, 255 -> IGNORE_COLOR, other labels -> UNKNOWN_COLOR."""
    table = np.tile(np.array(UNKNOWN_COLOR, dtype=np.uint8), (256, 1))
    for k, color in enumerate(colors[:IGNORE_INDEX]):
        table[k] = parse_color(color)
    table[IGNORE_INDEX] = IGNORE_COLOR
    return table


def _as_mask(mask: ArrayLike) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    values = np.asarray(mask)
    if values.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {values.shape}")
    return values.astype(np.uint8)


def _as_image(image: ArrayLike) -> np.ndarray:
    """(H, W, 3) uint8 from a PIL image, an (H, W, 3) array or a (3, H, W) tensor."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        image = image.permute(1, 2, 0) if image.ndim == 3 and image.shape[0] == 3 else image
        image = image.numpy()
    values = np.asarray(image)
    if values.ndim == 2:
        values = np.repeat(values[..., None], 3, axis=-1)
    if values.ndim != 3 or values.shape[-1] != 3:
        raise ValueError(f"expected an RGB image, got shape {values.shape}")
    return values.astype(np.uint8)


def colorize(mask: ArrayLike, colors: Sequence[Color]) -> Image.Image:
    """(H, W) class indices -> RGB image in the class colours."""
    return Image.fromarray(_lookup_table(colors)[_as_mask(mask)])


def overlay(image_uint8: ArrayLike, mask: ArrayLike, colors: Sequence[Color], alpha: float = 0.5) -> Image.Image:
    """The image with each labelled pixel blended towards its class colour (``alpha`` of the colour).

    Ignored pixels (255) keep the image as it is.
    """
    image = _as_image(image_uint8)
    labels = _as_mask(mask)
    if image.shape[:2] != labels.shape:
        raise ValueError(f"image is {image.shape[0]}x{image.shape[1]} "
                         f"but the mask is {labels.shape[0]}x{labels.shape[1]}")
    colored = _lookup_table(colors)[labels].astype(np.float32)
    blended = (1 - alpha) * image.astype(np.float32) + alpha * colored
    blended = np.where((labels == IGNORE_INDEX)[..., None], image, blended)
    return Image.fromarray(np.round(blended).clip(0, 255).astype(np.uint8))


def index_png(mask: ArrayLike, colors: Sequence[Color]) -> Image.Image:
    """A palette ("P") image: pixel values are the class indices, viewers show the class colours."""
    image = Image.fromarray(_as_mask(mask), mode="P")
    image.putpalette(_lookup_table(colors).reshape(-1).tolist())
    return image


def grey_index_png(mask: ArrayLike) -> Image.Image:
    """An index PNG whose palette entry k is grey (k, k, k), 255 (ignored) included.

    A browser canvas only hands out colours, and dataset colours may repeat or equal the
    ignore colour (a black background), so ``index_png``'s masks cannot be read back to class
    indices there; these can, from any channel. The experiment page's overlay viewer reads
    them and colours each class itself, so a class can be toggled or recoloured without a
    new file. Any PNG reader that keeps palette indices (Pillow, numpy) reads the classes
    directly, as with ``index_png``.
    """
    image = Image.fromarray(_as_mask(mask), mode="P")
    image.putpalette(np.repeat(np.arange(256, dtype=np.uint8), 3).tolist())
    return image
