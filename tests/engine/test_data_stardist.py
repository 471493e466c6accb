"""A real, human-annotated fixture (DSB 2018 nuclei, via stardist) through the upload path.

The 512x512 fluorescence image and its instance mask are tiled into 64 tiles of 64x64 in
the upload layout with masks stored as 0/255, the way biologists usually save binary
masks; the dataset must validate as two classes and a tiny UNet must learn from it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.config import RunConfig
from engine.data import inspect_dataset
from engine.reporting import NullReporter
from engine.trainer import train

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "stardist"
TILE = 64


class LossRecorder(NullReporter):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.losses.append(metrics["loss"])


@pytest.fixture(scope="module")
def nuclei_dataset(tmp_path_factory) -> Path:
    image = np.asarray(Image.open(FIXTURE / "img2d.tif"), dtype=np.float32)
    instances = np.asarray(Image.open(FIXTURE / "mask2d.tif"))
    image = (image / image.max() * 255).round().astype(np.uint8)
    binary = np.where(instances > 0, 255, 0).astype(np.uint8)
    root = tmp_path_factory.mktemp("nuclei")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for row in range(0, image.shape[0], TILE):
        for col in range(0, image.shape[1], TILE):
            stem = f"tile_{row // TILE}_{col // TILE}"
            Image.fromarray(image[row:row + TILE, col:col + TILE]).save(root / "images" / f"{stem}.png")
            Image.fromarray(binary[row:row + TILE, col:col + TILE]).save(root / "masks" / f"{stem}.png")
    return root


def test_fixture_is_the_real_one():
    image, mask = Image.open(FIXTURE / "img2d.tif"), Image.open(FIXTURE / "mask2d.tif")
    assert image.size == mask.size == (512, 512)
    assert len(np.unique(np.asarray(mask))) > 100  # an instance mask: one id per nucleus


def test_tiles_validate_as_two_classes(nuclei_dataset):
    info = inspect_dataset(nuclei_dataset)
    assert info.num_images == info.num_labeled == 64
    assert info.binary_255 and [c["name"] for c in info.classes] == ["background", "foreground"]
    assert 0.05 < info.classes[1]["pixel_share"] < 0.6


def test_a_few_supervised_steps_lower_the_loss(nuclei_dataset, single_thread):
    config = RunConfig.from_flat({
        "data": str(nuclei_dataset), "arch": "unet", "model_options": {"base_width": 8, "depth": 2},
        "method": "supervised", "labeled": "all", "crop_size": 48, "batch_size": 4, "iters": 20,
        "eval_every": 20, "log_every": 5, "lr": 0.01, "device": "cpu",
    })
    recorder = LossRecorder()
    result = train(config, recorder)
    assert result.steps == 20 and len(recorder.losses) == 4
    assert recorder.losses[-1] < 0.8 * recorder.losses[0], recorder.losses
