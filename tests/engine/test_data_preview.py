"""Sample pictures for the dataset page: class indices whatever the masks' encoding, scaled with their image."""
import json

import numpy as np
from PIL import Image

from engine.data import inspect_dataset
from engine.data.preview import SAMPLES_MANIFEST, write_samples


def test_palette_rgb_and_binary_masks_become_class_index_pictures(write_dataset, tmp_path):
    palette = Image.fromarray(np.array([[0, 1], [2, 0]], dtype=np.uint8).repeat(8, 0).repeat(8, 1)).convert("P")
    palette.putpalette([0, 0, 0, 200, 0, 0, 0, 200, 0] + [0] * 759)
    root = write_dataset({"a": palette, "b": None})
    inspect_dataset(root)

    manifest = write_samples(root, tmp_path / "samples")

    assert [entry["id"] for entry in manifest] == ["a"]  # the unlabelled image is no sample
    with Image.open(tmp_path / "samples" / manifest[0]["labels"]) as labels:
        assert labels.mode == "L" and np.array_equal(np.asarray(labels), np.asarray(palette))
    assert json.loads((tmp_path / "samples" / SAMPLES_MANIFEST).read_text()) == manifest


def test_binary_255_masks_read_as_class_1_and_ignored_pixels_stay_255(write_dataset, tmp_path):
    binary = np.zeros((16, 16), dtype=np.uint8)
    binary[:, 8:] = 255
    root = write_dataset({"a": binary})
    inspect_dataset(root)

    manifest = write_samples(root, tmp_path / "samples")

    with Image.open(tmp_path / "samples" / manifest[0]["labels"]) as labels:
        assert set(np.unique(np.asarray(labels))) == {0, 1}


def test_large_samples_are_scaled_down_with_their_labels_and_spread_over_the_dataset(write_dataset, tmp_path):
    mask = np.zeros((40, 100), dtype=np.uint8)
    mask[:, 50:] = 1
    root = write_dataset({f"s{i:02d}": mask for i in range(10)})
    inspect_dataset(root)

    manifest = write_samples(root, tmp_path / "samples", count=3, max_side=50)

    assert [entry["id"] for entry in manifest] == ["s00", "s03", "s06"]
    assert (manifest[0]["width"], manifest[0]["height"]) == (50, 20)
    with Image.open(tmp_path / "samples" / manifest[0]["image"]) as image, \
            Image.open(tmp_path / "samples" / manifest[0]["labels"]) as labels:
        assert image.size == labels.size == (50, 20)
        assert np.asarray(labels)[:, :25].max() == 0 and np.asarray(labels)[:, 25:].min() == 1
