"""Folder layouts a dataset may come in, each found by its folder names.

* ``images-masks`` (the upload layout): ``images/<stem>.*``, ``masks/<stem>.png``,
  optional ``classes.json`` and ``splits/{train,val}.txt``.
* ``voc`` (Pascal VOC 2012, Everingham et al., IJCV 2010): ``JPEGImages/*.jpg``,
  ``SegmentationClass/*.png`` palette masks with a 255 border,
  ``ImageSets/Segmentation/{train,val}.txt``.
* ``cityscapes`` (Cordts et al., CVPR 2016): ``leftImg8bit/{train,val}/<city>/*_leftImg8bit.png``
  with ``gtFine/{train,val}/<city>/*_gtFine_labelTrainIds.png`` (the 19 training ids
  written by cityscapesScripts' ``createTrainIdLabelImgs``; 255 = ignore).

A scanner only lists files and pairs them; it reads no pixels.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
MASK_SUFFIXES = {".png", ".bmp", ".tif", ".tiff"}

VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]
CITYSCAPES_CLASSES = [
    ("road", "#804080"), ("sidewalk", "#f423e8"), ("building", "#464646"), ("wall", "#66669c"),
    ("fence", "#be9999"), ("pole", "#999999"), ("traffic light", "#faaa1e"), ("traffic sign", "#dcdc00"),
    ("vegetation", "#6b8e23"), ("terrain", "#98fb98"), ("sky", "#4682b4"), ("person", "#dc143c"),
    ("rider", "#ff0000"), ("car", "#00008e"), ("truck", "#000046"), ("bus", "#003c64"), ("train", "#005064"),
    ("motorcycle", "#0000e6"), ("bicycle", "#770b20"),
]
CITYSCAPES_IMAGE_SUFFIX = "_leftImg8bit"
CITYSCAPES_MASK_SUFFIX = "_gtFine_labelTrainIds"


def voc_color(index: int) -> str:
    """The VOC palette colour of a class (the bit-interleaving of the devkit's ``labelcolormap``)."""
    r = g = b = 0
    for shift in range(7, -1, -1):
        r |= ((index >> 0) & 1) << shift
        g |= ((index >> 1) & 1) << shift
        b |= ((index >> 2) & 1) << shift
        index >>= 3
    return f"#{r:02x}{g:02x}{b:02x}"


@dataclass(frozen=True)
class Sample:
    id: str
    image: Path
    mask: Path | None


@dataclass
class LayoutScan:
    samples: list[Sample]
    train_ids: list[str] | None = None
    val_ids: list[str] | None = None
    #: (name, colour) per class when the layout fixes them; classes.json overrides.
    default_classes: list[tuple[str, str]] | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Layout:
    name: str
    detect: Callable[[Path], bool]
    scan: Callable[[Path], LayoutScan]


LAYOUTS: list[Layout] = []


def layout(name: str,
           detect: Callable[[Path], bool]) -> Callable[[Callable[[Path], LayoutScan]], Callable[[Path], LayoutScan]]:
    def decorator(scan: Callable[[Path], LayoutScan]) -> Callable[[Path], LayoutScan]:
        LAYOUTS.append(Layout(name, detect, scan))
        return scan

    return decorator


def detect_layout(root: Path) -> Layout | None:
    return next((candidate for candidate in LAYOUTS if candidate.detect(root)), None)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".") and path.name != "__MACOSX"


def files_by_stem(folder: Path, suffixes: set[str], root: Path, strip: str = "",
                  recursive: bool = False) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    """Files of ``folder`` keyed by stem (less ``strip``); unknown types and duplicate stems are errors."""
    found: dict[str, Path] = {}
    errors: list[tuple[str, str]] = []
    if not folder.is_dir():
        return found, errors
    paths = folder.rglob("*") if recursive else folder.iterdir()
    for path in sorted(paths):
        if (not _visible(path) or not path.is_file()
                or any(not _visible(p) for p in path.relative_to(folder).parents if p.name)):
            continue
        relative = path.relative_to(root).as_posix()
        if path.suffix.lower() not in suffixes:
            errors.append((relative, f"not an image file (expected one of {', '.join(sorted(suffixes))})"))
            continue
        stem = path.stem
        if strip:
            if not stem.endswith(strip):
                continue  # Cityscapes keeps other label kinds (colour, instance ids) beside the ones we read
            stem = stem[: -len(strip)]
        if stem in found:
            errors.append((relative, f"duplicate stem `{stem}` (also {found[stem].relative_to(root).as_posix()}); "
                                     "every image needs a unique name"))
            continue
        found[stem] = path
    return found, errors


def read_split(path: Path) -> list[str] | None:
    if not path.exists():
        return None
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _pair(images: dict[str, Path], masks: dict[str, Path], root: Path,
          image_hint: str) -> tuple[list[Sample], list[tuple[str, str]]]:
    errors = [(mask.relative_to(root).as_posix(), f"mask has no image (expected {image_hint.format(stem=stem)})")
              for stem, mask in masks.items() if stem not in images]
    return [Sample(stem, path, masks.get(stem)) for stem, path in images.items()], errors


@layout("images-masks", detect=lambda root: (root / "images").is_dir())
def scan_images_masks(root: Path) -> LayoutScan:
    images, errors = files_by_stem(root / "images", IMAGE_SUFFIXES, root)
    masks, mask_errors = files_by_stem(root / "masks", MASK_SUFFIXES, root)
    samples, pair_errors = _pair(images, masks, root, "images/{stem}.png or .jpg")
    return LayoutScan(samples, read_split(root / "splits" / "train.txt"), read_split(root / "splits" / "val.txt"),
                      errors=errors + mask_errors + pair_errors)


@layout("voc", detect=lambda root: (root / "JPEGImages").is_dir() and (root / "SegmentationClass").is_dir())
def scan_voc(root: Path) -> LayoutScan:
    images, errors = files_by_stem(root / "JPEGImages", IMAGE_SUFFIXES, root)
    masks, mask_errors = files_by_stem(root / "SegmentationClass", MASK_SUFFIXES, root)
    samples, pair_errors = _pair(images, masks, root, "JPEGImages/{stem}.jpg")
    splits = root / "ImageSets" / "Segmentation"
    return LayoutScan(samples, read_split(splits / "train.txt"), read_split(splits / "val.txt"),
                      default_classes=[(name, voc_color(i)) for i, name in enumerate(VOC_CLASSES)],
                      errors=errors + mask_errors + pair_errors)


@layout("cityscapes", detect=lambda root: (root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir())
def scan_cityscapes(root: Path) -> LayoutScan:
    samples: list[Sample] = []
    errors: list[tuple[str, str]] = []
    split_ids: dict[str, list[str]] = {}
    seen: dict[str, Path] = {}
    for split in ("train", "val"):
        images, image_errors = files_by_stem(root / "leftImg8bit" / split, IMAGE_SUFFIXES, root,
                                             strip=CITYSCAPES_IMAGE_SUFFIX, recursive=True)
        masks, mask_errors = files_by_stem(root / "gtFine" / split, MASK_SUFFIXES, root,
                                           strip=CITYSCAPES_MASK_SUFFIX, recursive=True)
        errors += image_errors + mask_errors
        if images and not masks and (root / "gtFine" / split).is_dir():
            errors.append((f"gtFine/{split}/", f"no *{CITYSCAPES_MASK_SUFFIX}.png masks; create them with "
                                               "cityscapesScripts' createTrainIdLabelImgs"))
        split_samples, pair_errors = _pair(images, masks, root,
                                           f"leftImg8bit/{split}/<city>/{{stem}}{CITYSCAPES_IMAGE_SUFFIX}.png")
        errors += pair_errors
        for sample in split_samples:
            if sample.id in seen:
                errors.append((sample.image.relative_to(root).as_posix(),
                               f"duplicate stem `{sample.id}` (also {seen[sample.id].relative_to(root).as_posix()})"))
                continue
            seen[sample.id] = sample.image
            samples.append(sample)
        split_ids[split] = [sample.id for sample in split_samples]
    return LayoutScan(samples, split_ids["train"], split_ids["val"], default_classes=list(CITYSCAPES_CLASSES),
                      errors=errors)


def find_dataset_root(path: Path) -> Path:
    """Step into single wrapping folders (``mydata/``, ``VOCdevkit/VOC2012/``) down to the dataset."""
    while detect_layout(path) is None:
        entries = [entry for entry in path.iterdir() if _visible(entry)]
        if len(entries) != 1 or not entries[0].is_dir():
            return path
        path = entries[0]
    return path
