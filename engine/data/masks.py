"""Reading a mask file into class indices, whatever way it was saved.

Three encodings are accepted, so that users never convert their masks by hand:

* single-channel index images (mode L, 16-bit I;16 or I): the value is the class;
* palette PNGs (mode P, as Pascal VOC's SegmentationClass): the palette index is the
  class, the palette colours are only for viewing;
* RGB colour masks: each colour is mapped to its class through the colours of
  classes.json (an optional ``ignore_color`` maps to the ignore label).

Binary masks stored as 0/255 (or mode ``1``) are recognised by the inspector, which
sees all masks at once; here they read as 0/255 like any index mask.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

#: The label of pixels that carry no class (padding, void, unknown): the one definition in the engine.
IGNORE_INDEX = 255
INDEX_MODES = ("L", "P", "I;16", "I;16L", "I;16B", "I")
COLOR_MODES = ("RGB", "RGBA")


class MaskError(ValueError):
    """A mask that cannot be read as class indices; the message says how to save it."""


#: How a colour may be written in classes.json, for messages.
COLOR_FORMS = '"#rrggbb" or [r, g, b] with whole numbers 0-255'
_HEX_COLOR = re.compile(r"#?[0-9a-fA-F]{6}")


def hex_to_rgb(color: object) -> tuple[int, int, int]:
    """``"#rrggbb"`` (the ``#`` optional) or ``[r, g, b]`` (the palette form of mmsegmentation and VOC) -> (r, g, b);
    any other value (classes.json is user input) raises ValueError."""
    if isinstance(color, str):
        if not _HEX_COLOR.fullmatch(color):
            raise ValueError(f"colour must be {COLOR_FORMS}; got {color!r}")
        text = color.lstrip("#")
        return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
    if (isinstance(color, (list, tuple)) and len(color) == 3
            and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in color)):
        return int(color[0]), int(color[1]), int(color[2])
    raise ValueError(f"colour must be {COLOR_FORMS}; got {color!r}")


def rgb_to_hex(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _pack(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> one int32 per colour, so colours compare as numbers."""
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def read_mask(path: str | Path, colors: Sequence[tuple[int, int, int]] | None = None,
              ignore_color: tuple[int, int, int] | None = None, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Class indices (H, W) of one mask file; raises MaskError with the fix in the message."""
    with Image.open(path) as mask:
        return mask_labels(mask, colors, ignore_color, ignore_index)


def mask_labels(mask: Image.Image, colors: Sequence[tuple[int, int, int]] | None = None,
                ignore_color: tuple[int, int, int] | None = None, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Class indices (H, W) of an opened mask (decoded here if it is not yet)."""
    if mask.mode in INDEX_MODES:
        values = np.asarray(mask)
        if values.dtype.kind == "i" and values.size and values.min() < 0:
            raise MaskError("mask holds negative values; class indices start at 0")
        return values
    if mask.mode == "1":
        return np.asarray(mask.convert("L"))
    if mask.mode in COLOR_MODES:
        return _colors_to_labels(np.asarray(mask.convert("RGB")), colors, ignore_color, ignore_index)
    raise MaskError(f"mask has image mode {mask.mode}; save it as a single-channel index PNG (mode L or P) "
                    "or as an RGB colour mask with the colours listed in classes.json")


def _colors_to_labels(rgb: np.ndarray, colors: Sequence[tuple[int, int, int]] | None,
                      ignore_color: tuple[int, int, int] | None, ignore_index: int) -> np.ndarray:
    codes = _pack(rgb)
    unique, inverse = np.unique(codes, return_inverse=True)
    if not colors:
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return rgb[..., 0].copy()  # an index mask saved as grey RGB
        raise MaskError("mask is an RGB colour mask but classes.json gives no class colours; "
                        'add {"classes": [{"name": ..., "color": "#rrggbb"}, ...]} or save index masks')
    lookup = {int(code): i for i, code in enumerate(_pack(np.array(colors, dtype=np.uint8)))}
    if ignore_color is not None:
        lookup[int(_pack(np.array(ignore_color, dtype=np.uint8)))] = ignore_index
    unknown = [int(code) for code in unique if int(code) not in lookup]
    if unknown:
        shown = ", ".join(f"#{code:06x}" for code in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise MaskError(f"mask uses colours {shown}{more} that are not class colours in classes.json")
    table = np.array([lookup[int(code)] for code in unique], dtype=np.uint8)
    return table[inverse.reshape(codes.shape)]
