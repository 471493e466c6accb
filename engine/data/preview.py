"""A picture of a dataset: samples beside their colour-coded masks (for docs and pages)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from engine.data.index import IGNORE_INDEX, load_index
from engine.data.masks import hex_to_rgb, read_mask

#: Shown for ignored pixels: white, which no class colour uses by default.
IGNORE_RGB = (255, 255, 255)


def colorize(labels: np.ndarray, colors: list[str]) -> np.ndarray:
    """(H, W) training labels -> (H, W, 3) uint8 using the class colours."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[: len(colors)] = [hex_to_rgb(color) for color in colors]
    palette[IGNORE_INDEX] = IGNORE_RGB
    return palette[labels]


def sample_sheet(dataset: str | Path, out_png: str | Path, ids: list[str] | None = None, columns: int = 4,
                 scale: int = 2, count: int = 8) -> Path:
    """A grid of (image | mask) pairs, each pair ``scale`` times enlarged, with a class legend below."""
    index = load_index(dataset)
    chosen = ids or [sample.id for sample in index.samples if sample.mask is not None][:count]
    table = index.label_table()
    tiles = []
    for sample_id in chosen:
        sample = index.by_id[sample_id]
        with Image.open(sample.image) as image:
            rgb = np.array(image.convert("RGB"))
        labels = table[read_mask(sample.mask, index.mask_colors, index.ignore_color, index.ignore_index)]
        pair = np.concatenate([rgb, np.full((rgb.shape[0], 2, 3), 255, np.uint8), colorize(labels, index.class_colors)], 1)
        tiles.append(Image.fromarray(pair).resize((pair.shape[1] * scale, pair.shape[0] * scale), Image.NEAREST))
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
