"""Colour masks, overlays and index PNGs (used by `predict` and by the worker's prediction images)."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from engine.visualize import colorize, grey_index_png, index_png, overlay

COLORS = ["#000000", "#ff0000", (0, 0, 255)]


def test_colorize_paints_each_class_and_blacks_out_ignored_pixels():
    mask = np.array([[0, 1], [2, 255]], dtype=np.uint8)

    pixels = np.array(colorize(mask, COLORS))

    assert pixels[0, 1].tolist() == [255, 0, 0] and pixels[1, 0].tolist() == [0, 0, 255]
    assert pixels[1, 1].tolist() == [0, 0, 0]


def test_overlay_blends_labelled_pixels_and_keeps_ignored_ones():
    image = torch.full((3, 2, 2), 100, dtype=torch.uint8)  # (3, H, W) as PredictionSample holds it
    mask = torch.tensor([[1, 255], [2, 0]], dtype=torch.uint8)

    pixels = np.array(overlay(image, mask, COLORS, alpha=0.5))

    assert pixels[0, 0].tolist() == [178, 50, 50]  # (100 + 255) / 2, rounded half to even
    assert pixels[0, 1].tolist() == [100, 100, 100]
    assert pixels[1, 0].tolist() == [50, 50, 178]


def test_index_png_keeps_class_indices_with_a_palette():
    mask = np.array([[0, 1], [2, 255]], dtype=np.uint8)

    image = index_png(mask, COLORS)

    assert image.mode == "P"
    assert np.array_equal(np.array(image), mask)
    assert image.getpalette()[3:6] == [255, 0, 0]


def test_grey_index_png_reads_back_as_indices_from_its_colours(tmp_path):
    mask = np.array([[0, 1], [7, 255]], dtype=np.uint8)

    grey_index_png(mask).save(tmp_path / "mask.png")

    with Image.open(tmp_path / "mask.png") as saved:
        assert np.array_equal(np.array(saved), mask)  # indices, as index_png keeps them
        assert np.array_equal(np.array(saved.convert("RGB"))[..., 0], mask)  # and what a canvas sees
