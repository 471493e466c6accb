"""Reading a dataset folder into an index of samples (no pixel data loaded).

``scan`` lists and pairs files in whichever layout the folder uses and reads
classes.json; ``load_index`` (``engine.data.inspect``) adds what only the pixels tell (classes counted from the
masks, 0/255 binary masks), taken from the ``dataset.json`` description that
``inspect_dataset`` writes next to the data, so a training start does not re-read every
mask. The description is keyed by the list, sizes and modification times of the
dataset's files: any change makes ``load_index`` inspect again.
"""
from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data.description import DatasetInfo
from engine.data.errors import DatasetError, without_paths
from engine.data.layouts import Sample, detect_layout, find_dataset_root
from engine.data.masks import COLOR_FORMS, IGNORE_INDEX, hex_to_rgb, rgb_to_hex

#: Class indices travel as uint8 with 255 reserved for "ignore".
MAX_CLASSES = 255
#: Masks are read as up to 16-bit values.
MAX_MASK_VALUE = 65535
#: Longest class name; names are shown in legends, tables and forms.
MAX_CLASS_NAME = 100
#: classes.json is read whole: a list of a few hundred classes is a few kilobytes.
MAX_CLASSES_BYTES = 1024 * 1024
#: Values quoted from classes.json in messages are cut to this many characters.
MAX_SHOWN = 60
CLASSES_EXAMPLE = '{"classes": [{"name": "background", "color": "#000000"}, ...], "ignore_index": 255}'
DESCRIPTION_FILE = "dataset.json"
#: Bump when inspection rules change, so older descriptions are not trusted.
DESCRIPTION_VERSION = 3
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
    """The classes of ``root/classes.json`` (or the layout's ``defaults``), and every problem with the file.

    Accepted::

        {"classes": [{"name": "road", "color": "#804080"}, {"name": "car", "color": [0, 0, 142]}, ...],
         "ignore_index": 255, "ignore_color": "#ffffff"}

    or a plain list of names. Colours are ``"#rrggbb"`` or ``[r, g, b]`` (the palette form of
    mmsegmentation and the VOC tools) and are stored as ``"#rrggbb"``.
    """
    path = root / "classes.json"
    if not path.exists():
        if defaults:
            names = [name for name, _ in defaults]
            colors = [color for _, color in defaults]
            return ClassSpec(names, colors), []
        return ClassSpec(), []
    payload, problem = _read_json(path)
    if problem:
        return ClassSpec(), [("classes.json", problem)]
    if isinstance(payload, dict):
        if "classes" not in payload:
            return ClassSpec(), [("classes.json", f"has no `classes` list; expected {CLASSES_EXAMPLE}")]
        classes = payload["classes"]
    else:
        classes, payload = payload, {}
    if not isinstance(classes, list):
        return ClassSpec(), [("classes.json", f"`classes` must be a list of names or of "
                                              f'{{"name": ..., "color": ...}} objects; got {_shown(classes)}')]
    if not classes:
        return ClassSpec(), [("classes.json", "defines no classes")]
    if len(classes) > MAX_CLASSES:
        return ClassSpec(), [("classes.json", f"defines {len(classes)} classes; at most {MAX_CLASSES} are supported "
                                              f"({IGNORE_INDEX} = ignore)")]
    errors: list[tuple[str, str]] = []
    names = []
    given: list[str] = []  # the names that are valid text, checked for repeats
    explicit: list[tuple[int, int, int] | None] = []
    for i, item in enumerate(classes):
        name, color, problems = _read_class(i, item)
        names.append(f"class {i}" if name is None else name)
        if name is not None:
            given.append(name)
        explicit.append(color)
        errors += [("classes.json", problem) for problem in problems]
    if len(set(given)) != len(given):
        errors.append(("classes.json", "class names repeat; every class needs its own name"))
    rgb = [color for color in explicit if color is not None]
    if len(set(rgb)) != len(rgb):
        errors.append(("classes.json", "two classes share a colour; RGB masks could not tell them apart"))
    ignore_index, ignore_rgb, problems = _read_ignore(payload, len(names))
    errors += [("classes.json", problem) for problem in problems]
    colors = [rgb_to_hex(color) if color else DEFAULT_COLORS[i % len(DEFAULT_COLORS)]
              for i, color in enumerate(explicit)]
    mask_colors = rgb if rgb and len(rgb) == len(names) else None
    return ClassSpec(names, colors, ignore_index, mask_colors, ignore_rgb), errors


def _read_json(path: Path) -> tuple[object, str | None]:
    """The parsed file, or why it cannot be read, in the user's words."""
    if not path.is_file():
        return None, "is a folder, not a file"
    try:
        if path.stat().st_size > MAX_CLASSES_BYTES:
            return None, f"is {path.stat().st_size} bytes; at most {MAX_CLASSES_BYTES} are read"
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, "is not UTF-8 text; save it as UTF-8 JSON"
    except OSError as error:
        return None, f"cannot be read ({error.strerror})"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as error:
        return None, (f"is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
                      f"expected {CLASSES_EXAMPLE}")
    except (ValueError, RecursionError):
        return None, f"is not JSON we can read (numbers too long or nesting too deep); expected {CLASSES_EXAMPLE}"


def _read_ignore(payload: dict, num_classes: int) -> tuple[int, tuple[int, int, int] | None, list[str]]:
    """``ignore_index`` and ``ignore_color`` (either colour form), and what is wrong with them."""
    problems = []
    ignore_index = payload.get("ignore_index", IGNORE_INDEX)
    if not isinstance(ignore_index, int) or isinstance(ignore_index, bool) or not 0 <= ignore_index <= MAX_MASK_VALUE:
        problems.append(f"ignore_index must be a whole number 0-{MAX_MASK_VALUE} (usually {IGNORE_INDEX}); "
                        f"got {_shown(ignore_index)}")
        ignore_index = IGNORE_INDEX
    elif ignore_index < num_classes:
        problems.append(f"ignore_index {ignore_index} must not be a class index (0-{num_classes - 1}); "
                        f"use {IGNORE_INDEX}")
    ignore_rgb = _read_color(payload.get("ignore_color"), "ignore_color", problems)
    return ignore_index, ignore_rgb, problems


def _read_class(i: int, item: object) -> tuple[str | None, tuple[int, int, int] | None, list[str]]:
    """One entry of ``classes``: its name (None if unusable), its colour if given, and what is wrong with it."""
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict):
        return None, None, [f'class {i}: expected a name or {{"name": ..., "color": ...}}; got {_shown(item)}']
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        what = "has no `name`" if name is None else f"name must be a non-empty text; got {_shown(name)}"
        return None, None, [f"class {i}: {what}"]
    label = f"class {i} ({_shown(name)})"
    problems = []
    if len(name) > MAX_CLASS_NAME:
        problems.append(f"{label}: name is {len(name)} characters long; at most {MAX_CLASS_NAME} are allowed")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        problems.append(f"{label}: name holds control characters or broken text; use letters, digits and punctuation")
    rgb = _read_color(item.get("color"), f"{label}: colour", problems)
    return name, rgb, problems


def _read_color(value: object, what: str, problems: list[str]) -> tuple[int, int, int] | None:
    """A colour in either form of classes.json, or None (absent, or wrong: then ``problems`` says so)."""
    if value is None:
        return None
    try:
        return hex_to_rgb(value)
    except ValueError:
        problems.append(f"{what} must be {COLOR_FORMS}; got {_shown(value)}")
        return None


def _shown(value: object) -> str:
    """A value from classes.json as the user wrote it (JSON), cut short."""
    try:
        # Unpaired surrogates (legal in JSON escapes, not in UTF-8) are shown escaped.
        text = json.dumps(value, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")
    except (ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def scan(root: str | Path) -> tuple[DatasetIndex | None, list[tuple[str, str]]]:
    """Pair images with masks in the folder's layout; return the index and every problem found."""
    root = Path(root)
    found = detect_layout(root)
    if found is None:
        return None, [("", "no dataset found: expected images/ and masks/ (and optionally classes.json), "
                           "a Pascal VOC folder (JPEGImages/, SegmentationClass/) or a Cityscapes folder "
                           "(leftImg8bit/, gtFine/)")]
    try:
        listing = found.scan(root)
    except UnicodeDecodeError:
        return None, [("", f"a split file of the {found.name} layout is not UTF-8 text; list one image name per line")]
    except OSError as error:
        return None, [("", f"cannot read the {found.name} layout's files ({without_paths(str(error), root)})")]
    errors = list(listing.errors)
    if not listing.samples:
        errors.append(("", f"no images found in the {found.name} layout"))
    spec, class_errors = read_classes(root, listing.default_classes)
    errors += class_errors
    index = DatasetIndex(root, listing.samples, spec.names, spec.colors, spec.ignore_index, listing.train_ids,
                         listing.val_ids, layout=found.name, mask_colors=spec.mask_colors,
                         ignore_color=spec.ignore_color)
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
        errors.append(("splits", f"`{stem}` is in both the train and the val split; "
                                 "a validation image is never trained on"))
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
    try:
        payload = json.loads((index.root / DESCRIPTION_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("version") != DESCRIPTION_VERSION:
        return None
    if payload.get("fingerprint") != fingerprint(index):
        return None
    return DatasetInfo.from_dict(payload["info"])


def relabel_classes(root: str | Path, names: list[str], colors: list[str | list[int]]) -> DatasetInfo:
    """Rename and recolour the classes of the folder's ``dataset.json``, the description runs read.

    ``names`` and ``colors`` give every class in order; a colour is either form classes.json
    accepts and is stored as ``"#rrggbb"``. Only display colours change: RGB masks are still
    decoded through the colours of classes.json (``mask_colors``), which is never touched.
    The description keeps its version and fingerprint and is replaced atomically. A folder
    whose description is missing or no longer matches its files is refused, since
    ``load_index`` would inspect it again and the new names would be lost. Raises
    DatasetError listing every problem; nothing is written then.
    """
    index, errors = scan(find_dataset_root(Path(root)))
    if index is None or errors:
        raise DatasetError(errors)
    info = cached_description(index)
    if info is None:
        raise DatasetError([(DESCRIPTION_FILE, "is missing or no longer matches the dataset's files; inspect the "
                                               "folder again (engine.data.inspect_dataset), then change its classes")])
    if len(names) != info.num_classes or len(colors) != info.num_classes:
        raise DatasetError([("", f"got {len(names)} names and {len(colors)} colours for a dataset of "
                                 f"{info.num_classes} classes; give one of each per class")])
    problems: list[str] = []
    hex_colors: list[str | None] = []
    first_with: dict[str, int] = {}
    for i, (name, color) in enumerate(zip(names, colors, strict=True)):
        valid_name, rgb, found = _read_class(i, {"name": name, "color": color})
        if valid_name is not None and rgb is None and not found:
            found = [f"class {i} ({_shown(name)}): colour must be {COLOR_FORMS}; got null"]
        problems += found
        hex_colors.append(rgb_to_hex(rgb) if rgb else None)
        if valid_name is not None and valid_name in first_with:
            problems.append(f"class {i} ({_shown(name)}): class {first_with[valid_name]} has that name too; "
                            "every class needs its own name")
        elif valid_name is not None:
            first_with[valid_name] = i
    if problems:
        raise DatasetError([("", problem) for problem in problems])
    info.classes = [{**described, "name": name, "color": color}
                    for described, name, color in zip(info.classes, names, hex_colors, strict=True)]
    payload = {"version": DESCRIPTION_VERSION, "fingerprint": fingerprint(index), "info": info.to_dict()}
    target = index.root / DESCRIPTION_FILE
    partial = target.with_suffix(".json.partial")
    try:
        partial.write_text(json.dumps(payload, indent=1))
        partial.replace(target)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise DatasetError([(DESCRIPTION_FILE, f"cannot be written ({error.strerror}); nothing was changed")]) from None
    return info
