"""The one dataset validator: a description of a valid dataset, or every problem in it.

Every image and mask is decoded in full (``Image.load``), so a file whose compressed data
is broken is refused here, by name, and not by a training run later. (Chunk CRCs are not
walked as well: decoding checks zlib's Adler-32 over the pixel data, while a valid CRC
says nothing about whether the compressed data decodes.) Before anything is decoded, the
header's width x height is checked against ``Limits.max_image_pixels``, so a small file
that declares a huge image (a decompression bomb) is refused without allocating it.
Files are checked on a pool of threads, since Pillow releases the GIL while decoding; at
most ``INSPECT_THREADS`` decoded files are in memory at once. The process-wide warnings
filter is never touched from those threads.

``load_index`` is the reading side: the index of a valid folder with its classes resolved
from the stored description, or from an inspection here when there is none.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from engine.data.description import DatasetInfo
from engine.data.errors import DatasetError, read_problem
from engine.data.extract import extract_zip
from engine.data.index import DEFAULT_COLORS, MAX_CLASSES, DatasetIndex, cached_description, save_description, scan
from engine.data.layouts import Sample, find_dataset_root
from engine.data.limits import Limits
from engine.data.masks import IGNORE_INDEX, MaskError, mask_labels

#: Above this many distinct labels in masks without classes.json, the masks are probably not class maps.
MANY_CLASSES_WARNING = 64
INSPECT_THREADS = min(8, (os.cpu_count() or 1) * 2)
#: Samples per task handed to the pool: one task per small file would cost more to schedule than to check.
INSPECT_BATCH = 32


@dataclass
class _Checked:
    """What one sample's files told us."""

    errors: list[tuple[str, str]] = field(default_factory=list)
    size: tuple[int, int] | None = None
    labels: np.ndarray | None = None  # distinct stored values in the mask
    counts: np.ndarray | None = None  # pixels per value


class _Refused(Exception):
    """A file refused before decoding; the message says why."""


def _open_decoded(path: Path, limits: Limits) -> Image.Image:
    """The file decoded in full once its header passed the pixel limit; the caller closes it."""
    image = Image.open(path)
    try:
        width, height = image.size
        if width * height > limits.max_image_pixels:
            raise _Refused(f"{width}x{height} pixels is more than the limit of {limits.max_image_pixels}")
        image.load()
    except BaseException:
        image.close()
        raise
    return image


def _problem(kind: str, error: Exception, root: Path) -> str:
    return str(error) if isinstance(error, _Refused) else f"unreadable {kind}: {read_problem(error, root)}"


def _check_sample(sample: Sample, index: DatasetIndex, root: Path, limits: Limits) -> _Checked:
    checked = _Checked()
    image_name = sample.image.relative_to(root).as_posix()
    try:
        with _open_decoded(sample.image, limits) as image:
            checked.size = image.size
    except Exception as error:  # any exception of a Pillow plugin on a malformed file is a refused file
        checked.errors.append((image_name, _problem("image", error, root)))
        return checked
    if sample.mask is None:
        return checked
    mask_name = sample.mask.relative_to(root).as_posix()
    try:
        with _open_decoded(sample.mask, limits) as decoded:
            mask = mask_labels(decoded, index.mask_colors, index.ignore_color, index.ignore_index)
    except MaskError as error:
        checked.errors.append((mask_name, str(error)))
        return checked
    except Exception as error:
        checked.errors.append((mask_name, _problem("mask", error, root)))
        return checked
    width, height = checked.size
    if mask.shape != (height, width):
        checked.errors.append((mask_name, f"mask is {mask.shape[1]}x{mask.shape[0]} but its image {image_name} "
                                          f"is {width}x{height}; masks must match their image pixel for pixel"))
        return checked
    if mask.dtype == np.uint8:
        counts = np.bincount(mask.ravel(), minlength=256)
        checked.labels = np.flatnonzero(counts)
        checked.counts = counts[checked.labels]
    else:
        checked.labels, checked.counts = np.unique(mask, return_counts=True)
    return checked


def inspect_dataset(path: str | Path, limits: Limits | None = None) -> DatasetInfo:
    """Validate a dataset folder or zip; raise DatasetError listing every problem found.

    A valid folder gets a ``dataset.json`` description that ``load_index`` reuses.
    """
    limits = limits or Limits()
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        staging = Path(tempfile.mkdtemp(prefix="seglab-inspect-"))
        try:
            return _inspect_folder(extract_zip(path, staging / "data", limits), limits, describe=False)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if not path.is_dir():
        raise DatasetError([(path.name, "is neither a folder nor a zip file")])
    return _inspect_folder(find_dataset_root(path), limits, describe=True)


def _inspect_folder(root: Path, limits: Limits, describe: bool) -> DatasetInfo:
    index, errors = scan(root)
    if index is None:
        raise DatasetError(errors)
    files = [s.image for s in index.samples] + [s.mask for s in index.samples if s.mask is not None]
    if len(files) > limits.max_files:
        raise DatasetError(errors + [("", f"the dataset holds {len(files)} files, "
                                          f"more than the limit of {limits.max_files}")])
    num_bytes = sum(os.stat(file).st_size for file in files)
    if num_bytes > limits.max_bytes:
        raise DatasetError(errors + [("", f"the dataset holds {num_bytes} bytes, "
                                          f"more than the limit of {limits.max_bytes}")])

    batches = [index.samples[i:i + INSPECT_BATCH] for i in range(0, len(index.samples), INSPECT_BATCH)]
    with ThreadPoolExecutor(INSPECT_THREADS) as pool:
        checked = pool.map(lambda batch: [_check_sample(sample, index, root, limits) for sample in batch], batches)
        results = [result for batch in checked for result in batch]
    for result in results:
        errors += result.errors
    sizes = [result.size for result in results if result.size]
    # (mask path, stored values, pixels per value) of each sample whose mask was read.
    masked = [(sample.mask, result.labels, result.counts)
              for sample, result in zip(index.samples, results, strict=True)
              if sample.mask is not None and result.labels is not None and result.counts is not None]
    if not index.labeled_ids:
        errors.append(("", "no masks found: at least one image needs a mask"))

    counts = np.zeros(65536, dtype=np.int64)
    images_with = np.zeros(65536, dtype=np.int64)
    for _, values, value_counts in masked:
        inside = values < len(counts)
        counts[values[inside]] += value_counts[inside]
        images_with[values[inside]] += 1
    present = set(int(value) for _, values, _ in masked for value in values)
    ignore = index.ignore_index
    names, colors, notes = list(index.class_names), list(index.class_colors), []
    # 0/255 masks are binary (background/foreground), not "background + ignore".
    binary_255 = (ignore == IGNORE_INDEX and 255 in present and present <= {0, 255} and len(names) in (0, 2))
    if binary_255:
        names = names or ["background", "foreground"]
        colors = colors or [DEFAULT_COLORS[0], DEFAULT_COLORS[1]]
        counts[1], counts[255] = counts[255], 0
        images_with[1], images_with[255] = images_with[255], 0
        notes.append("masks store the foreground as 255: read as class 1 (foreground), 0 as background")
        ignore = IGNORE_INDEX
    elif not names:
        labels = sorted(value for value in present if value != ignore)
        too_big = [value for value in labels if value >= MAX_CLASSES]
        for mask, values, _ in masked:
            high = [int(v) for v in values if v >= MAX_CLASSES and v != ignore]
            if high:
                errors.append((mask.relative_to(root).as_posix(),
                               f"mask has label {high[0]}; masks without classes.json hold class indices "
                               f"0-{MAX_CLASSES - 1} ({IGNORE_INDEX} = ignore); for other values add classes.json"))
        count = (max(labels) + 1) if labels and not too_big else 1
        names = ["background", "foreground"] if count == 2 else ["background"] + [f"class {i}" for i in range(1, count)]
        colors = [DEFAULT_COLORS[i % len(DEFAULT_COLORS)] for i in range(count)]
        unused = [i for i in range(count) if i not in present]
        if unused and not too_big:
            notes.append(f"no mask uses label(s) {unused[:10]}; "
                         f"classes are counted up to the largest label ({count - 1})")
        if len(labels) > MANY_CLASSES_WARNING:
            notes.append(f"masks use {len(labels)} distinct values; if they are not class indices "
                         "(an instance mask, a photo), convert them or add classes.json")
    else:
        for mask, values, _ in masked:
            outside = [int(v) for v in values if v >= len(names) and v != ignore]
            if outside:
                errors.append((mask.relative_to(root).as_posix(),
                               f"mask {mask.name} has label {outside[0]} but {_class_source(index)} defines "
                               f"{len(names)} classes (0-{len(names) - 1}; {ignore} = ignore)"))
    if errors:
        raise DatasetError(errors)

    labelled_pixels = counts[: len(names)].sum() or 1
    classes = [
        {"index": i, "name": name, "color": colors[i], "pixel_share": float(counts[i] / labelled_pixels),
         "num_images": int(images_with[i])}
        for i, name in enumerate(names)
    ]
    info = DatasetInfo(
        num_images=len(index.samples),
        num_labeled=len(index.labeled_ids),
        num_unlabeled=len(index.unlabeled_ids),
        classes=classes,
        ignore_index=ignore,
        image_sizes={"min_width": min(w for w, _ in sizes), "max_width": max(w for w, _ in sizes),
                     "min_height": min(h for _, h in sizes), "max_height": max(h for _, h in sizes)},
        num_train=len(index.train_ids) if index.train_ids is not None else None,
        num_val=len(index.val_ids) if index.val_ids is not None else None,
        binary_255=binary_255,
        layout=index.layout,
        num_bytes=num_bytes,
        warnings=notes,
    )
    if describe:
        save_description(index, info)
    return info


def _class_source(index: DatasetIndex) -> str:
    """Who defined the classes, for error messages."""
    return "classes.json" if (index.root / "classes.json").exists() else f"the {index.layout} layout"


def load_index(path: str | Path, info: DatasetInfo | None = None) -> DatasetIndex:
    """The index of a valid dataset folder, with classes resolved.

    ``info`` is a description from ``inspect_dataset`` (the worker may pass the one stored
    at upload); without it, ``dataset.json`` is used when it still matches the files, and
    the folder is inspected otherwise.
    """
    root = Path(path)
    if root.is_file():
        raise DatasetError([(root.name, "training reads a dataset folder; extract the zip first "
                                        "(engine.data.extract_zip) and pass the folder")])
    index, errors = scan(find_dataset_root(root))
    if index is None or errors:
        raise DatasetError(errors)
    info = info or cached_description(index) or inspect_dataset(index.root)
    index.class_names = [c["name"] for c in info.classes]
    index.class_colors = [c["color"] for c in info.classes]
    index.ignore_index = info.ignore_index
    index.binary_255 = info.binary_255
    return index
