"""Shared fixtures of the engine tests: a tiny demo dataset and a tiny, fast run config."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from engine.config import RunConfig
from engine.data.builtin.demo import generate_demo

#: 12 masked images -> 2 validation + 10 training; 2 unlabelled. 32 px keeps a step in milliseconds.
DEMO_IMAGES, DEMO_UNLABELED, DEMO_SIZE = 12, 2, 32
#: The smallest UNet the registry accepts: a training step costs milliseconds on the CPU.
TINY_UNET = {"base_width": 4, "depth": 2}


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo(tmp_path_factory.mktemp("demo"), num_images=DEMO_IMAGES, num_unlabeled=DEMO_UNLABELED,
                         size=DEMO_SIZE, seed=0)


@pytest.fixture
def tiny_config(demo_dataset: Path) -> Callable[..., RunConfig]:
    """A few-iteration, deterministic CPU run on the demo dataset; keyword arguments override fields."""

    def make(**changes: Any) -> RunConfig:
        values = {
            "data": str(demo_dataset), "arch": "unet", "model_options": TINY_UNET, "method": "supervised",
            "labeled": "4", "crop_size": DEMO_SIZE, "batch_size": 2, "iters": 4, "eval_every": 2, "log_every": 1,
            "device": "cpu",
        }
        return RunConfig.from_flat({**values, **changes})

    return make


@pytest.fixture
def split_dataset(write_dataset):
    """Ten masked 28x20 images of three classes and three unlabelled ones: the loaders' tests."""
    import numpy as np

    rng = np.random.default_rng(0)
    masks = {f"m{i:02d}": rng.integers(0, 3, (20, 28), dtype=np.uint8) for i in range(10)}
    masks |= {f"u{i}": None for i in range(3)}
    return write_dataset(masks, classes=["bg", "a", "b"], image_size=(28, 20))


@pytest.fixture
def single_thread():
    """One intra-op thread: on a shared 2-core machine, OpenMP barriers make tiny convolutions 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def write_dataset(tmp_path: Path) -> Callable[..., Path]:
    """Write a small upload-layout dataset: ``masks`` maps stem -> uint8 array or PIL image (None = unlabelled).

    Images are random RGB PNGs of the mask's size (or ``image_size``); ``classes`` (names)
    becomes classes.json; ``splits`` maps "train"/"val" to stems.
    """
    import json

    import numpy as np
    from PIL import Image

    def write(masks: dict[str, Any], classes: list[str] | None = None, splits: dict[str, list[str]] | None = None,
              image_size: tuple[int, int] = (16, 16), root: Path | None = None) -> Path:
        root = root or tmp_path / "dataset"
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(exist_ok=True)
        rng = np.random.default_rng(0)
        for stem, mask in masks.items():
            if mask is None:
                width, height = image_size
            elif isinstance(mask, Image.Image):
                width, height = mask.size
            else:
                height, width = mask.shape[:2]
            Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
                root / "images" / f"{stem}.png")
            if mask is not None:
                (mask if isinstance(mask, Image.Image) else Image.fromarray(mask)).save(root / "masks" / f"{stem}.png")
        if classes is not None:
            (root / "classes.json").write_text(json.dumps({"classes": [{"name": name} for name in classes]}))
        for split, stems in (splits or {}).items():
            (root / "splits").mkdir(exist_ok=True)
            (root / "splits" / f"{split}.txt").write_text("\n".join(stems) + "\n")
        return root

    return write
