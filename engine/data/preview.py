"""A picture of a dataset: samples beside their colour-coded masks (for docs and pages)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from engine.data.errors import DatasetError, read_problem
from engine.data.index import DatasetIndex
from engine.data.inspect import load_index
from engine.data.layouts import Sample
from engine.data.masks import IGNORE_INDEX, MaskError, hex_to_rgb, read_mask

#: Shown for ignored pixels: white, which no class colour uses by default.
IGNORE_RGB = (255, 255, 255)
#: The list of samples ``write_samples`` writes beside their pictures.
SAMPLES_MANIFEST = "samples.json"


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
        tiles.append(Image.fromarray(pair).resize((width, height), Image.Resampling.NEAREST))
    width, height = tiles[0].size
    gap, legend_row = 6, 16
    rows = (len(tiles) + columns - 1) // columns
    legend_rows = (len(index.class_names) + 3) // 4
    sheet = Image.new("RGB", (columns * (width + gap) + gap,
                              rows * (height + gap) + gap + legend_rows * legend_row + gap), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, (gap + (i % columns) * (width + gap), gap + (i // columns) * (height + gap)))
    draw = ImageDraw.Draw(sheet)
    top = rows * (height + gap) + gap
    column_width = (sheet.width - gap) // 4
    for i, (name, color) in enumerate(zip(index.class_names, index.class_colors, strict=True)):
        x, y = gap + (i % 4) * column_width, top + (i // 4) * legend_row
        draw.rectangle([x, y + 2, x + 10, y + 12], fill=color, outline="black")
        draw.text((x + 14, y + 1), name, fill="black")
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def write_samples(dataset: str | Path, out_dir: str | Path, count: int = 12, max_side: int = 384) -> list[dict]:
    """``count`` labelled samples as pictures a browser overlays itself: for each, the image
    (RGB PNG) and its training labels (single-channel PNG, one byte per pixel: the class
    index, ``IGNORE_INDEX`` for ignored pixels), both scaled down to ``max_side``.

    Browsers decode palette, RGB and 16-bit masks to colours, so a page cannot read class
    indices from the uploaded mask files; these label pictures carry them whatever the
    masks' encoding. The samples are spread evenly over the labelled images. Writes
    ``samples.json`` (the returned list: id, image, labels, width, height) beside them.
    A file that cannot be read raises DatasetError naming it.
    """
    index = load_index(dataset)
    labelled = [sample for sample in index.samples if sample.mask is not None]
    step = max(1, len(labelled) // count) if count else 1
    chosen = labelled[::step][:count]
    table = index.label_table()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for number, sample in enumerate(chosen):
        rgb, labels = _read_pair(index, sample, table)
        image, mask = Image.fromarray(rgb), Image.fromarray(labels.astype(np.uint8), mode="L")
        if max(image.size) > max_side:
            ratio = max_side / max(image.size)
            size = (max(1, round(image.width * ratio)), max(1, round(image.height * ratio)))
            image, mask = image.resize(size, Image.Resampling.BILINEAR), mask.resize(size, Image.Resampling.NEAREST)
        names = {"image": f"{number:02d}-image.png", "labels": f"{number:02d}-labels.png"}
        image.save(out / names["image"])
        mask.save(out / names["labels"])
        manifest.append({"id": sample.id, **names, "width": image.width, "height": image.height})
    (out / SAMPLES_MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def _read_pair(index: DatasetIndex, sample: Sample, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 image and (H, W) uint8 training labels (``table``: stored value -> label)."""
    try:
        with Image.open(sample.image) as image:
            rgb = np.array(image.convert("RGB"))
    except Exception as error:  # a Pillow plugin raises many kinds on a malformed file
        raise DatasetError([(sample.image.relative_to(index.root).as_posix(),
                             f"unreadable image: {read_problem(error, index.root)}")]) from error
    assert sample.mask is not None, "sheets and samples show labelled images only"
    mask_name = sample.mask.relative_to(index.root).as_posix()
    try:
        labels = table[read_mask(sample.mask, index.mask_colors, index.ignore_color, index.ignore_index)]
    except MaskError as error:
        raise DatasetError([(mask_name, str(error))]) from error
    except Exception as error:
        raise DatasetError([(mask_name, f"unreadable mask: {read_problem(error, index.root)}")]) from error
    return rgb, labels


def _pair(index: DatasetIndex, sample: Sample, table: np.ndarray) -> np.ndarray:
    """(H, 2W + 2, 3) uint8: the image, a white gap, its colour-coded mask."""
    rgb, labels = _read_pair(index, sample, table)
    gap = np.full((rgb.shape[0], 2, 3), 255, np.uint8)
    return np.concatenate([rgb, gap, colorize(labels, index.class_colors)], 1)
