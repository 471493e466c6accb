"""Reading a dataset folder into an index of samples (no pixel data loaded)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from engine.data.errors import DatasetError

IGNORE_INDEX = 255
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
MASK_SUFFIXES = {".png", ".bmp", ".tif", ".tiff"}
#: Colours for datasets without classes.json (tab10-like, readable on overlays).
DEFAULT_COLORS = [
    "#000000", "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4",
    "#46f0f0", "#f032e6", "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324",
    "#fffac8", "#800000", "#aaffc3", "#808000", "#ffd8b1", "#000075",
]


@dataclass(frozen=True)
class Sample:
    id: str
    image: Path
    mask: Path | None


@dataclass
class DatasetIndex:
    root: Path
    samples: list[Sample]
    class_names: list[str]
    class_colors: list[str]
    ignore_index: int = IGNORE_INDEX
    train_ids: list[str] | None = None  # from splits/train.txt
    val_ids: list[str] | None = None  # from splits/val.txt
    binary_255: bool = False  # masks store foreground as 255: read as class 1
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


def _files_by_stem(folder: Path, suffixes: set[str]) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    found: dict[str, Path] = {}
    errors: list[tuple[str, str]] = []
    if not folder.is_dir():
        return found, errors
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        relative = f"{folder.name}/{path.name}"
        if path.suffix.lower() not in suffixes:
            errors.append((relative, f"not an image file (expected one of {', '.join(sorted(suffixes))})"))
            continue
        if path.stem in found:
            errors.append((relative, f"duplicate stem `{path.stem}` (also {folder.name}/{found[path.stem].name})"))
            continue
        found[path.stem] = path
    return found, errors


def read_classes(root: Path) -> tuple[list[str] | None, list[str] | None, int, list[tuple[str, str]]]:
    path = root / "classes.json"
    if not path.exists():
        return None, None, IGNORE_INDEX, []
    try:
        payload = json.loads(path.read_text())
        classes = payload["classes"] if isinstance(payload, dict) else payload
        names = [str(item["name"]) if isinstance(item, dict) else str(item) for item in classes]
        colors = [
            (item.get("color") if isinstance(item, dict) else None) or DEFAULT_COLORS[i % len(DEFAULT_COLORS)]
            for i, item in enumerate(classes)
        ]
        ignore_index = int(payload.get("ignore_index", IGNORE_INDEX)) if isinstance(payload, dict) else IGNORE_INDEX
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return None, None, IGNORE_INDEX, [("classes.json", f"cannot read it ({error}); expected "
                                         '{"classes": [{"name": "background", "color": "#000000"}, ...]}')]
    if not names:
        return None, None, IGNORE_INDEX, [("classes.json", "defines no classes")]
    return names, colors, ignore_index, []


def _read_split(root: Path, name: str) -> list[str] | None:
    path = root / "splits" / f"{name}.txt"
    if not path.exists():
        return None
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def scan(root: Path) -> tuple[DatasetIndex | None, list[tuple[str, str]]]:
    """Pair images with masks by stem; return the index (classes unresolved) and the errors."""
    errors: list[tuple[str, str]] = []
    if not (root / "images").is_dir():
        return None, [("", "no images/ folder found: a dataset holds images/ and masks/ (and optionally classes.json)")]
    images, image_errors = _files_by_stem(root / "images", IMAGE_SUFFIXES)
    masks, mask_errors = _files_by_stem(root / "masks", MASK_SUFFIXES)
    errors += image_errors + mask_errors
    for stem, mask in masks.items():
        if stem not in images:
            errors.append((f"masks/{mask.name}", f"mask has no image (expected images/{stem}.png or .jpg)"))
    if not images:
        errors.append(("images/", "holds no images"))
    names, colors, ignore_index, class_errors = read_classes(root)
    errors += class_errors
    samples = [Sample(stem, path, masks.get(stem)) for stem, path in images.items()]
    index = DatasetIndex(root, samples, names or [], colors or [], ignore_index,
                         _read_split(root, "train"), _read_split(root, "val"))
    for split in ("train", "val"):
        for stem in getattr(index, f"{split}_ids") or []:
            if stem not in index.by_id:
                errors.append((f"splits/{split}.txt", f"lists `{stem}`, which is not in images/"))
    return index, errors


def load_index(path: str | Path) -> DatasetIndex:
    """The index of a dataset folder already validated by ``inspect_dataset``.

    Classes come from classes.json, or from the ``dataset.json`` description that
    ``inspect_dataset`` wrote at upload, or are counted from the masks.
    """
    from engine.data.inspect import inspect_dataset  # the one place that resolves classes

    root = Path(path)
    info = inspect_dataset(root)
    index, _ = scan(root)
    assert index is not None
    index.class_names = [c["name"] for c in info.classes]
    index.class_colors = [c["color"] for c in info.classes]
    index.ignore_index = info.ignore_index
    index.binary_255 = info.binary_255
    return index
