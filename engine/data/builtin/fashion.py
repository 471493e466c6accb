"""`fashion-scenes`: real Fashion-MNIST product photos composited onto textured canvases.

Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017, arXiv:1708.07747,
github.com/zalandoresearch/fashion-mnist) holds 70,000 28x28 grey product photos of ten
garment kinds (60,000 in the official train file, 10,000 in the test file). A canvas
here is a textured background (base colour, low-frequency colour noise, one pattern,
pixel noise) with 2-4 garments painted in order, so later ones occlude earlier ones;
each garment is tinted with a random colour shaded by its own intensity, and its class
covers the pixels whose intensity is above a small threshold. Garments are drawn
uniformly from the file, i.e. at Fashion-MNIST's natural class frequencies.

Training canvases use only the official train file and validation canvases only the test
file, so no garment photo is seen in both. `fashion-scenes-shifted` is built from the test
file alone, with other textures, a colour cast, other garment scales and heavier
occlusion: a model trained on `fashion-scenes` is evaluated there under distribution shift.

The four IDX files come from the Debian package ``dataset-fashion-mnist``
(/usr/share/datasets/fashion-mnist) or any folder given as ``source``.
"""
from __future__ import annotations

import functools
import gzip
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from engine.data.builtin import register_generator
from engine.options import Option

DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")
FINE_CLASSES = ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                "ankle boot"]
#: Coarse class of each Fashion-MNIST label (index into COARSE_CLASSES).
COARSE_OF_FINE = [1, 2, 1, 3, 1, 4, 1, 4, 5, 4]
COARSE_CLASSES = ["background", "tops", "trousers", "dresses", "footwear", "bags"]
CLASS_COLORS = ["#000000", "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4",
                "#46f0f0", "#f032e6", "#bcf60c", "#9a6324"]
#: Garment pixels below this intensity (of 255) stay background: the photos' dark margins.
INTENSITY_THRESHOLD = 24
#: Garment sizes are given for a 64 px canvas and scale with it.
REFERENCE_CANVAS = 64
IDX_IMAGES, IDX_LABELS = 0x0803, 0x0801


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format), gzipped or not: big-endian magic, dims, then uint8 data."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as stream:
        zero, dtype, ndim = struct.unpack(">HBB", stream.read(4))
        if zero != 0 or dtype != 0x08 or ndim not in (1, 3):
            raise ValueError(f"{path} is not a uint8 IDX file (magic {zero:#06x} {dtype:#04x} {ndim})")
        shape = struct.unpack(f">{ndim}I", stream.read(4 * ndim))
        data = np.frombuffer(stream.read(), dtype=np.uint8)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} holds {data.size} bytes of data but its header declares shape {shape}")
    return data.reshape(shape)


def load_fashion_mnist(source: str | Path | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 28, 28) uint8 images and (N,) labels of the official ``train`` or ``t10k`` file."""
    folder = Path(source) if source else DEFAULT_SOURCE
    arrays = []
    for kind in ("images-idx3", "labels-idx1"):
        name = f"{split}-{kind}-ubyte"
        candidates = [folder / f"{name}.gz", folder / name]
        path = next((p for p in candidates if p.exists()), None)
        if path is None:
            raise FileNotFoundError(f"Fashion-MNIST file {name}(.gz) not found in {folder}; install the Debian "
                                    "package dataset-fashion-mnist or pass source=<folder with the four IDX files>")
        arrays.append(read_idx(path))
    images, labels = arrays
    if len(images) != len(labels):
        raise ValueError(f"{folder}: {len(images)} {split} images but {len(labels)} labels")
    return images, labels


@dataclass(frozen=True)
class SceneStyle:
    """What differs between the benchmark and its shifted twin."""

    patterns: tuple[str, ...]
    items: tuple[int, int]  # garments per canvas, inclusive
    item_px: tuple[int, int]  # garment side on a 64 px canvas, inclusive
    color_cast: float  # strength of a per-canvas colour cast (0 = none)
    spread: float  # share of the canvas garment centres may use (smaller = more overlap)


BENCHMARK = SceneStyle(("stripes", "checks", "blotches"), (2, 4), (18, 37), 0.0, 1.0)
SHIFTED = SceneStyle(("rings", "dots", "gradient"), (4, 6), (26, 46), 0.35, 0.55)


@functools.lru_cache(maxsize=16)
def _upsampler(cells: int, size: int) -> np.ndarray:
    """(size, cells) weights of a smoothstep interpolation from a coarse grid to ``size`` pixels."""
    position = (np.arange(size) + 0.5) / size * (cells - 1)
    low = np.minimum(position.astype(int), cells - 2)
    t = position - low
    t = t * t * (3 - 2 * t)
    weights = np.zeros((size, cells), dtype=np.float32)
    weights[np.arange(size), low] = 1 - t
    weights[np.arange(size), low + 1] = t
    return weights


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int) -> np.ndarray:
    """Low-frequency noise: a coarse random grid interpolated smoothly, (size, size, channels)."""
    coarse = rng.normal(0, 1, size=(cells, cells, channels)).astype(np.float32)
    weights = _upsampler(cells, size)
    rows = np.tensordot(weights, coarse, axes=(1, 0))  # (size, cells, channels)
    return np.tensordot(weights, rows, axes=(1, 1)).transpose(1, 0, 2)


@functools.lru_cache(maxsize=16)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    return yy, xx


def _pattern(kind: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """A (size, size) pattern in about [-1, 1]."""
    yy, xx = _grid(size)
    period = rng.uniform(0.06, 0.25)
    angle = rng.uniform(0, np.pi)
    u = np.cos(angle) * xx + np.sin(angle) * yy
    v = -np.sin(angle) * xx + np.cos(angle) * yy
    if kind == "stripes":
        return np.sin(2 * np.pi * u / period)
    if kind == "checks":
        return np.sign(np.sin(np.pi * u / period) * np.sin(np.pi * v / period))
    if kind == "blotches":
        return np.tanh(3 * _smooth_noise(rng, size, int(rng.integers(5, 10)), 1)[..., 0])
    if kind == "rings":
        cy, cx = rng.uniform(0, 1, size=2)
        return np.sin(2 * np.pi * np.hypot(yy - cy, xx - cx) / period)
    if kind == "dots":
        return 2.0 * ((np.sin(np.pi * u / period) * np.sin(np.pi * v / period)) > 0.6) - 1
    return 2 * u / max(float(u.max() - u.min()), 1e-6) - 1  # gradient


def _background(rng: np.random.Generator, size: int, style: SceneStyle) -> np.ndarray:
    """(size, size, 3) float: base colour + low-frequency colour noise + a pattern in a second colour."""
    base = rng.uniform(30, 225, size=3)
    accent = rng.uniform(-70, 70, size=3)
    pattern = _pattern(str(rng.choice(style.patterns)), rng, size)
    image = (base + rng.uniform(10, 30) * _smooth_noise(rng, size, 4, 3)
             + rng.uniform(0.3, 1.0) * accent * pattern[..., None])
    return image


def render_canvas(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, size: int, style: SceneStyle,
                  fine: bool) -> tuple[np.ndarray, np.ndarray]:
    """One canvas: uint8 (size, size, 3) image and uint8 (size, size) class mask."""
    image = _background(rng, size, style)
    mask = np.zeros((size, size), dtype=np.uint8)
    scale = size / REFERENCE_CANVAS
    low, high = (max(4, int(round(px * scale))) for px in style.item_px)
    for _ in range(int(rng.integers(style.items[0], style.items[1] + 1))):
        item = int(rng.integers(len(images)))
        side = int(rng.integers(low, high + 1))
        garment = np.asarray(Image.fromarray(images[item]).resize((side, side), Image.Resampling.BILINEAR),
                             dtype=np.float32)
        # Centres within the middle `spread` of the canvas; a garment may hang over the edge.
        margin = (1 - style.spread) / 2 * size
        cy, cx = rng.uniform(margin, size - margin, size=2)
        top, left = int(cy - side / 2), int(cx - side / 2)
        rows = slice(max(0, top), min(size, top + side))
        cols = slice(max(0, left), min(size, left + side))
        patch = garment[rows.start - top:rows.stop - top, cols.start - left:cols.stop - left]
        region = patch > INTENSITY_THRESHOLD
        color = rng.uniform(40, 255, size=3)
        shaded = color * (0.25 + 0.75 * patch[..., None] / 255)
        image[rows, cols][region] = shaded[region]
        label = int(labels[item])
        mask[rows, cols][region] = label + 1 if fine else COARSE_OF_FINE[label]
    if style.color_cast:
        image = image * (1 + rng.uniform(-style.color_cast, style.color_cast, size=3))
    image = image + rng.normal(0, 6, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def write_scenes(out_dir: str | Path, *, splits: dict[str, tuple[np.ndarray, np.ndarray, int]], size: int,
                 style: SceneStyle, classes: str, seed: int) -> Path:
    """Write each split's canvases (``name: (images, labels, count)``) with masks, classes.json and splits/."""
    out = Path(out_dir)
    for folder in ("images", "masks", "splits"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    fine = classes == "fine"
    for number, (split, (images, labels, count)) in enumerate(splits.items()):
        rng = np.random.default_rng([seed, number])  # one stream per split: counts do not shift each other
        stems = []
        for i in range(count):
            image, mask = render_canvas(rng, images, labels, size, style, fine)
            stem = f"{split}_{i:05d}"
            # Pixel noise does not compress: the fastest zlib level costs nothing in size.
            Image.fromarray(image).save(out / "images" / f"{stem}.png", compress_level=1)
            Image.fromarray(mask).save(out / "masks" / f"{stem}.png")
            stems.append(stem)
        (out / "splits" / f"{split}.txt").write_text("\n".join(stems) + "\n")
    names = ["background", *FINE_CLASSES] if fine else COARSE_CLASSES
    payload = {"classes": [{"name": name, "color": CLASS_COLORS[i]} for i, name in enumerate(names)],
               "ignore_index": 255}
    (out / "classes.json").write_text(json.dumps(payload, indent=2) + "\n")
    return out


def _options(num_train: int, num_val: int) -> tuple[Option, ...]:
    return (
        Option("num_train", "int", num_train, "Training canvases.", min=1, max=100_000),
        Option("num_val", "int", num_val, "Validation canvases.", min=1, max=100_000),
        Option("size", "int", 64, "Canvas side in pixels (garment sizes scale with it).", min=32, max=1024),
        Option("classes", "str", "coarse", "coarse: background + tops, trousers, dresses, footwear, bags; "
                                           "fine: background + the 10 Fashion-MNIST classes.",
               choices=("coarse", "fine")),
        Option("seed", "int", 0, "Random seed: the same seed writes the same files.", min=0, max=2**32 - 1),
        Option("source", "str", "", "Folder with the four Fashion-MNIST IDX files (default: "
                                    f"{DEFAULT_SOURCE}, from the Debian package dataset-fashion-mnist)."),
    )


PAPER = "Fashion-MNIST: Xiao et al., 2017, arXiv:1708.07747"


@register_generator("fashion-scenes", family="composited", paper=PAPER, options=_options(1024, 300))
def generate_fashion_scenes(out_dir: str | Path, num_train: int = 1024, num_val: int = 300, size: int = 64,
                            classes: str = "coarse", seed: int = 0, source: str = "") -> Path:
    train = load_fashion_mnist(source, "train")
    test = load_fashion_mnist(source, "t10k")
    return write_scenes(out_dir, splits={"train": (*train, num_train), "val": (*test, num_val)},
                        size=size, style=BENCHMARK, classes=classes, seed=seed)


@register_generator("fashion-scenes-shifted", family="composited", paper=PAPER, options=_options(256, 300))
def generate_fashion_scenes_shifted(out_dir: str | Path, num_train: int = 256, num_val: int = 300, size: int = 64,
                                    classes: str = "coarse", seed: int = 0, source: str = "") -> Path:
    images, labels = load_fashion_mnist(source, "t10k")
    half = len(images) // 2  # train and val canvases draw from disjoint halves of the test file
    return write_scenes(out_dir, splits={"train": (images[:half], labels[:half], num_train),
                                         "val": (images[half:], labels[half:], num_val)},
                        size=size, style=SHIFTED, classes=classes, seed=seed)
