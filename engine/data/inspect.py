"""The one dataset validator: a description of a valid dataset, or every problem in it."""
from __future__ import annotations

import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.data.errors import DatasetError
from engine.data.index import DEFAULT_COLORS, IGNORE_INDEX, scan


@dataclass(frozen=True)
class Limits:
    """Refuse archives that would fill the disk (zip bombs) or the catalogue."""

    max_files: int = 100_000
    max_bytes: int = 20 * 1024**3  # uncompressed
    max_image_pixels: int = 64 * 1024 * 1024


@dataclass
class DatasetInfo:
    num_images: int
    num_labeled: int
    num_unlabeled: int
    classes: list[dict[str, Any]]  # index, name, color, pixel_share
    ignore_index: int
    image_sizes: dict[str, int]  # min/max width/height
    num_train: int | None = None  # from splits/, when given
    num_val: int | None = None
    binary_255: bool = False
    layout: str = "images-masks"
    warnings: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_mask(path: Path) -> np.ndarray:
    with Image.open(path) as mask:
        if mask.mode not in ("L", "P", "I", "I;16", "1"):
            raise ValueError(f"mask must be a single-channel index PNG (mode L or P), got mode {mask.mode}")
        return np.asarray(mask.convert("L") if mask.mode == "1" else mask)


def inspect_dataset(path: str | Path, limits: Limits | None = None) -> DatasetInfo:
    """Validate a dataset folder or zip; raise DatasetError listing every problem found."""
    limits = limits or Limits()
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        from engine.data.extract import extract_zip

        staging = Path(tempfile.mkdtemp(prefix="seglab-inspect-"))
        try:
            return inspect_dataset(extract_zip(path, staging, limits), limits)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if not path.is_dir():
        raise DatasetError([(path.name, "is neither a folder nor a zip file")])

    index, errors = scan(path)
    if index is None:
        raise DatasetError(errors)
    if len(index.samples) > limits.max_files:
        raise DatasetError([("", f"{len(index.samples)} images is more than the limit of {limits.max_files}")])

    widths: list[int] = []
    heights: list[int] = []
    counts = np.zeros(256 * 256, dtype=np.int64)
    for sample in index.samples:
        image_name = f"images/{sample.image.name}"
        try:
            with Image.open(sample.image) as image:
                image.verify()
            with Image.open(sample.image) as image:
                size = image.size
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            errors.append((image_name, f"unreadable image ({error.__class__.__name__}: {error})"))
            continue
        if size[0] * size[1] > limits.max_image_pixels:
            errors.append((image_name, f"{size[0]}x{size[1]} pixels is more than the limit of {limits.max_image_pixels}"))
            continue
        widths.append(size[0])
        heights.append(size[1])
        if sample.mask is None:
            continue
        mask_name = f"masks/{sample.mask.name}"
        try:
            mask = _read_mask(sample.mask)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            errors.append((mask_name, f"unreadable mask ({error})"))
            continue
        if mask.shape != (size[1], size[0]):
            errors.append((mask_name, f"mask is {mask.shape[1]}x{mask.shape[0]} but its image is {size[0]}x{size[1]}"))
            continue
        counts[: int(mask.max()) + 1] += np.bincount(mask.ravel(), minlength=int(mask.max()) + 1)

    ignore = index.ignore_index
    present = [int(value) for value in np.flatnonzero(counts)]
    labels = [value for value in present if value != ignore]
    # 0/255 masks with no class list are binary masks, not "background + ignore".
    binary_255 = not index.class_names and set(present) <= {0, 255} and 255 in present
    names, colors = index.class_names, index.class_colors
    if binary_255:
        names, colors = ["background", "foreground"], [DEFAULT_COLORS[0], DEFAULT_COLORS[1]]
        counts[1], counts[255] = counts[255], 0
        labels = [value for value in (0, 1) if counts[value]]
    elif not names:
        count = (max(labels) + 1) if labels else 1
        names = ["background"] + [f"class {i}" for i in range(1, count)]
        colors = [DEFAULT_COLORS[i % len(DEFAULT_COLORS)] for i in range(count)]
    else:
        outside = [value for value in labels if value >= len(names)]
        if outside:
            errors.append(("masks/", f"masks use label values {outside} but classes.json defines "
                                     f"{len(names)} classes (0-{len(names) - 1}; {ignore} = ignore)"))
    if index.num_classes == 0 and not index.labeled_ids:
        errors.append(("masks/", "no masks found: at least one image needs a mask in masks/"))
    if errors:
        raise DatasetError(errors)

    labelled_pixels = counts[: len(names)].sum() or 1
    classes = [
        {"index": i, "name": name, "color": colors[i], "pixel_share": float(counts[i] / labelled_pixels)}
        for i, name in enumerate(names)
    ]
    return DatasetInfo(
        num_images=len(index.samples),
        num_labeled=len(index.labeled_ids),
        num_unlabeled=len(index.unlabeled_ids),
        classes=classes,
        ignore_index=IGNORE_INDEX if binary_255 else ignore,
        image_sizes={"min_width": min(widths), "max_width": max(widths),
                     "min_height": min(heights), "max_height": max(heights)},
        num_train=len(index.train_ids) if index.train_ids is not None else None,
        num_val=len(index.val_ids) if index.val_ids is not None else None,
        binary_255=binary_255,
    )
