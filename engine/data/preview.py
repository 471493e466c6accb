"""A picture of a dataset: samples beside their colour-coded masks (for docs and pages)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from engine.data.errors import DatasetError, read_problem
from engine.data.index import IGNORE_INDEX, DatasetIndex, load_index
from engine.data.layouts import Sample
from engine.data.masks import MaskError, hex_to_rgb, read_mask

#: Shown for ignored pixels: white, which no class colour uses by default.
IGNORE_RGB = (255, 255, 255)


def colorize(labels: np.ndarray, colors: list[str]) -> np.ndarray:
    """(H, W) training labels -> (H, W, 3) uint8 using the class colours."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[: len(colors)] = [hex_to_rgb(color) for color in colors]
    palette[IGNORE_INDEX] = IGNORE_RGB
    return palette[labels]


def sample_sheet(dataset: str | Path, out_png: str | Path, ids: list[str] | None = None, columns: int = 4,
                 scale: int = 2, count: int = 8, max_tile_width: int | None = None) -> Path:
    """A grid of (image | mask) pairs, each pair ``scale`` times enlarged, with a class legend below.

    ``max_tile_width`` shrinks wider pairs, so a sheet of large photos stays small. A file
    that cannot be read raises DatasetError naming it.
    """
    index = load_index(dataset)
    chosen = ids or [sample.id for sample in index.samples if sample.mask is not None][:count]
    table = index.label_table()
    tiles = []
    for sample_id in chosen:
        pair = _pair(index, index.by_id[sample_id], table)
        width, height = pair.shape[1] * scale, pair.shape[0] * scale
        if max_tile_width and width > max_tile_width:
            width, height = max_tile_width, max(1, height * max_tile_width // width)
        tiles.append(Image.fromarray(pair).resize((width, height), Image.NEAREST))
    width, height = tiles[0].size
    gap, legend_row = 6, 16
    rows = (len(tiles) + columns - 1) // columns
    legend_rows = (len(index.class_names) + 3) // 4
    sheet = Image.new("RGB", (columns * (width + gap) + gap, rows * (height + gap) + gap + legend_rows * legend_row + gap),
                      "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, (gap + (i % columns) * (width + gap), gap + (i // columns) * (height + gap)))
    draw = ImageDraw.Draw(sheet)
    top = rows * (height + gap) + gap
    column_width = (sheet.width - gap) // 4
    for i, (name, color) in enumerate(zip(index.class_names, index.class_colors)):
        x, y = gap + (i % 4) * column_width, top + (i // 4) * legend_row
        draw.rectangle([x, y + 2, x + 10, y + 12], fill=color, outline="black")
        draw.text((x + 14, y + 1), name, fill="black")
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def _pair(index: DatasetIndex, sample: Sample, table: np.ndarray) -> np.ndarray:
    """(H, 2W + 2, 3) uint8: the image, a white gap, its colour-coded mask (``table``: stored value -> label)."""
    try:
        with Image.open(sample.image) as image:
            rgb = np.array(image.convert("RGB"))
    except Exception as error:  # a Pillow plugin raises many kinds on a malformed file
        raise DatasetError([(sample.image.relative_to(index.root).as_posix(),
                             f"unreadable image: {read_problem(error, index.root)}")]) from error
    mask_name = sample.mask.relative_to(index.root).as_posix()
    try:
        labels = table[read_mask(sample.mask, index.mask_colors, index.ignore_color, index.ignore_index)]
    except MaskError as error:
        raise DatasetError([(mask_name, str(error))]) from error
    except Exception as error:
        raise DatasetError([(mask_name, f"unreadable mask: {read_problem(error, index.root)}")]) from error
    gap = np.full((rgb.shape[0], 2, 3), 255, np.uint8)
    return np.concatenate([rgb, gap, colorize(labels, index.class_colors)], 1)
