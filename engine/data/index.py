"""Reading a dataset folder into an index of samples (no pixel data loaded).

``scan`` lists and pairs files in whichever layout the folder uses and reads
classes.json; ``load_index`` adds what only the pixels tell (classes counted from the
masks, 0/255 binary masks), taken from the ``dataset.json`` description that
``inspect_dataset`` writes next to the data, so a training start does not re-read every
mask. The description is keyed by the list, sizes and modification times of the
dataset's files: any change makes ``load_index`` inspect again.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.data.errors import DatasetError
from engine.data.layouts import Sample, detect_layout, find_dataset_root
from engine.data.masks import hex_to_rgb

if TYPE_CHECKING:
    from engine.data.inspect import DatasetInfo

IGNORE_INDEX = 255
#: Class indices travel as uint8 with 255 reserved for "ignore".
MAX_CLASSES = 255
DESCRIPTION_FILE = "dataset.json"
#: Bump when inspection rules change, so older descriptions are not trusted.
DESCRIPTION_VERSION = 2
#: Colours for datasets without classes.json (tab10-like, readable on overlays).
DEFAULT_COLORS = [
    "#000000", "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4",
    "#46f0f0", "#f032e6", "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324",
    "#fffac8", "#800000", "#aaffc3", "#808000", "#ffd8b1", "#000075",
]

@dataclass
class ClassSpec:
    """What classes.json (or the layout) says about classes; empty names = count from masks."""

    names: list[str] = field(default_factory=list)
    colors: list[str] = field(default_factory=list)
    ignore_index: int = IGNORE_INDEX
    #: RGB colour masks are decoded through these; None unless every class names its colour.
    mask_colors: list[tuple[int, int, int]] | None = None
    ignore_color: tuple[int, int, int] | None = None


@dataclass
class DatasetIndex:
    root: Path
    samples: list[Sample]
    class_names: list[str]
    class_colors: list[str]
    ignore_index: int = IGNORE_INDEX
    train_ids: list[str] | None = None  # from the layout's split files
    val_ids: list[str] | None = None
    binary_255: bool = False  # masks store foreground as 255: read as class 1
    layout: str = "images-masks"
    mask_colors: list[tuple[int, int, int]] | None = None
    ignore_color: tuple[int, int, int] | None = None
    by_id: dict[str, Sample] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {sample.id: sample for sample in self.samples}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def labeled_ids(self) -> list[str]:
        return [sample.id for sample in self.samples if sample.mask is not None]

    @property
    def unlabeled_ids(self) -> list[str]:
        return [sample.id for sample in self.samples if sample.mask is None]

    def label_table(self) -> np.ndarray:
        """Stored mask value -> training label (uint8, 255 = ignore), for any 16-bit value."""
        table = np.arange(65536, dtype=np.int64)
        # A validated mask holds nothing above the classes but its ignore value.
        table[self.num_classes:] = IGNORE_INDEX
        if self.binary_255:
            table[255] = 1
        return table.astype(np.uint8)


def read_classes(root: Path, defaults: list[tuple[str, str]] | None) -> tuple[ClassSpec, list[tuple[str, str]]]:
    path = root / "classes.json"
    if not path.exists():
        if defaults:
            names = [name for name, _ in defaults]
            colors = [color for _, color in defaults]
            return ClassSpec(names, colors), []
        return ClassSpec(), []
    problem = ('cannot read it ({}); expected {{"classes": [{{"name": "background", "color": "#000000"}}, ...], '
               '"ignore_index": 255}}')
    try:
        payload = json.loads(path.read_text())
        classes = payload["classes"] if isinstance(payload, dict) else payload
        if not isinstance(classes, list):
            raise TypeError("`classes` must be a list")
        names = [str(item["name"]) if isinstance(item, dict) else str(item) for item in classes]
        explicit = [item.get("color") if isinstance(item, dict) else None for item in classes]
        ignore_index = int(payload.get("ignore_index", IGNORE_INDEX)) if isinstance(payload, dict) else IGNORE_INDEX
        ignore_color = payload.get("ignore_color") if isinstance(payload, dict) else None
        rgb = [hex_to_rgb(color) for color in explicit if color]
        ignore_rgb = hex_to_rgb(ignore_color) if ignore_color else None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return ClassSpec(), [("classes.json", problem.format(error))]
    errors: list[tuple[str, str]] = []
    if not names:
        errors.append(("classes.json", "defines no classes"))
    if len(names) > MAX_CLASSES:
        errors.append(("classes.json", f"defines {len(names)} classes; at most {MAX_CLASSES} are supported (255 = ignore)"))
    if len(set(names)) != len(names):
        errors.append(("classes.json", "class names repeat; every class needs its own name"))
    if not 0 <= ignore_index <= 65535 or ignore_index < len(names):
        errors.append(("classes.json", f"ignore_index {ignore_index} must not be a class index (0-{len(names) - 1}); "
                                       f"use {IGNORE_INDEX}"))
    if len(set(rgb)) != len(rgb):
        errors.append(("classes.json", "two classes share a colour; RGB masks could not tell them apart"))
    colors = [color or DEFAULT_COLORS[i % len(DEFAULT_COLORS)] for i, color in enumerate(explicit)]
    mask_colors = rgb if rgb and len(rgb) == len(names) else None
    return ClassSpec(names, colors, ignore_index, mask_colors, ignore_rgb), errors


def scan(root: str | Path) -> tuple[DatasetIndex | None, list[tuple[str, str]]]:
    """Pair images with masks in the folder's layout; return the index and every problem found."""
    root = Path(root)
    found = detect_layout(root)
    if found is None:
        return None, [("", "no dataset found: expected images/ and masks/ (and optionally classes.json), "
                           "a Pascal VOC folder (JPEGImages/, SegmentationClass/) or a Cityscapes folder "
                           "(leftImg8bit/, gtFine/)")]
    listing = found.scan(root)
    errors = list(listing.errors)
    if not listing.samples:
        errors.append(("", f"no images found in the {found.name} layout"))
    spec, class_errors = read_classes(root, listing.default_classes)
    errors += class_errors
    index = DatasetIndex(root, listing.samples, spec.names, spec.colors, spec.ignore_index, listing.train_ids,
                         listing.val_ids, layout=found.name, mask_colors=spec.mask_colors, ignore_color=spec.ignore_color)
    errors += _check_splits(index)
    return index, errors


def _check_splits(index: DatasetIndex) -> list[tuple[str, str]]:
    errors = []
    for split, ids in (("train", index.train_ids), ("val", index.val_ids)):
        for stem in ids or []:
            if stem not in index.by_id:
                errors.append((f"{split} split", f"lists `{stem}`, which is not among the images"))
            elif split == "val" and index.by_id[stem].mask is None:
                errors.append((f"{split} split", f"lists `{stem}`, which has no mask; validation images need masks"))
    for stem in sorted(set(index.train_ids or []) & set(index.val_ids or [])):
        errors.append(("splits", f"`{stem}` is in both the train and the val split; a validation image is never trained on"))
    return errors


def fingerprint(index: DatasetIndex) -> str:
    """A digest of the dataset's file list, sizes and modification times."""
    digest = hashlib.sha256(index.layout.encode())
    paths = [sample.image for sample in index.samples] + [sample.mask for sample in index.samples if sample.mask]
    paths += [p for p in (index.root / "classes.json", index.root / "splits" / "train.txt",
                          index.root / "splits" / "val.txt") if p.exists()]
    for path in sorted(paths):
        stat = os.stat(path)
        digest.update(f"{path.relative_to(index.root).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def save_description(index: DatasetIndex, info: DatasetInfo) -> None:
    """Best effort: a read-only dataset folder is inspected again at each start instead."""
    payload = {"version": DESCRIPTION_VERSION, "fingerprint": fingerprint(index), "info": info.to_dict()}
    target = index.root / DESCRIPTION_FILE
    try:
        partial = target.with_suffix(".json.partial")
        partial.write_text(json.dumps(payload, indent=1))
        partial.replace(target)
    except OSError:
        pass


def cached_description(index: DatasetIndex) -> DatasetInfo | None:
    from engine.data.inspect import DatasetInfo

    try:
        payload = json.loads((index.root / DESCRIPTION_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("version") != DESCRIPTION_VERSION:
        return None
    if payload.get("fingerprint") != fingerprint(index):
        return None
    return DatasetInfo.from_dict(payload["info"])


def load_index(path: str | Path, info: DatasetInfo | None = None) -> DatasetIndex:
    """The index of a valid dataset folder, with classes resolved.

    ``info`` is a description from ``inspect_dataset`` (the worker may pass the one stored
    at upload); without it, ``dataset.json`` is used when it still matches the files, and
    the folder is inspected otherwise.
    """
    from engine.data.inspect import inspect_dataset  # the one place that resolves classes

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
