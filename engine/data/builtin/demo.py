"""`demo`: procedural scenes of shapes on textured backgrounds; needs nothing installed.

A class is a shape (disc, box, triangle, ring), never a colour: every shape is painted
in a random colour over a random texture, shapes occlude one another and pixel noise is
added, so a model has to learn shape and context and does not reach 100% mIoU in a few
iterations.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from engine.data.builtin import register_generator
from engine.options import Option

CLASSES = [
    ("background", "#000000"),
    ("disc", "#e6194b"),
    ("box", "#3cb44b"),
    ("triangle", "#4363d8"),
    ("ring", "#f58231"),
]


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A base colour, low-frequency colour noise and stripes or checks: (size, size, 3) float."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(40, 215, size=3)
    coarse = rng.normal(0, 25, size=(4, 4, 3))
    low = np.kron(coarse, np.ones((size // 4 + 1, size // 4 + 1, 1)))[:size, :size]
    period = rng.uniform(0.08, 0.3)
    angle = rng.uniform(0, np.pi)
    phase = (np.cos(angle) * xx + np.sin(angle) * yy) / period
    pattern = (np.sin(2 * np.pi * phase) if rng.random() < 0.5
               else np.sign(np.sin(np.pi * xx / period) * np.sin(np.pi * yy / period)))
    return base + low + rng.uniform(5, 30) * pattern[..., None]


def _shape_mask(kind: int, rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    radius = rng.uniform(0.1, 0.22) * size
    cy, cx = rng.uniform(radius, size - radius, size=2)
    if kind == 1:
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    if kind == 2:
        half_h, half_w = radius * rng.uniform(0.6, 1.2, size=2)
        return (np.abs(yy - cy) <= half_h) & (np.abs(xx - cx) <= half_w)
    if kind == 3:
        top = cy - radius
        inside = (yy >= top) & (yy <= cy + radius)
        half_width = (yy - top) / (2 * radius) * radius * 1.2
        return inside & (np.abs(xx - cx) <= half_width)
    distance = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    return (distance <= radius) & (distance >= radius * rng.uniform(0.45, 0.65))


def render_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    image = _texture(rng, size)
    mask = np.zeros((size, size), dtype=np.uint8)
    for _ in range(rng.integers(2, 6)):
        kind = int(rng.integers(1, len(CLASSES)))
        region = _shape_mask(kind, rng, size)
        image[region] = _texture(rng, size)[region] * 0.5 + rng.uniform(0, 255, size=3) * 0.5
        mask[region] = kind
    image += rng.normal(0, 12, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


DEMO_OPTIONS = (
    Option("num_images", "int", 160, "Images with masks.", min=2, max=100_000),
    Option("num_unlabeled", "int", 40, "Extra images without masks (the unlabelled pool).", min=0, max=100_000),
    Option("size", "int", 64, "Image side in pixels.", min=16, max=1024),
    Option("seed", "int", 0, "Random seed: the same seed writes the same files.", min=0, max=2**32 - 1),
)


@register_generator("demo", family="procedural", paper="SegLab procedural shapes", options=DEMO_OPTIONS)
def generate_demo(out_dir: str | Path, num_images: int = 160, num_unlabeled: int = 40, size: int = 64,
                  seed: int = 0) -> Path:
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(num_images + num_unlabeled):
        image, mask = render_scene(rng, size)
        stem = f"scene_{i:05d}"
        Image.fromarray(image).save(out / "images" / f"{stem}.png")
        if i < num_images:
            Image.fromarray(mask).save(out / "masks" / f"{stem}.png")
    classes = [{"name": name, "color": color} for name, color in CLASSES]
    (out / "classes.json").write_text(json.dumps({"classes": classes, "ignore_index": 255}, indent=2))
    return out
