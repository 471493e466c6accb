"""SEGLAB_DECODE_CACHE: decoded images and masks read back from disk give the batches decoding gives."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

import engine.data.loaders as loaders
from engine.data import build_training_data
from engine.data.decode_cache import ENVIRONMENT, DecodeCache
from engine.data.errors import DatasetError
from engine.data.loaders import training_loader

CROP = 24


def batches(folder, num_workers: int = 0) -> list[dict]:
    data = build_training_data(folder, labeled="1/2", seed=0, crop_size=CROP, need_unlabeled=True)
    return [next(iter(training_loader(part, 2, seed=0, stream=stream, num_workers=num_workers)))
            for stream, part in enumerate((data.labeled, data.unlabeled))]


def assert_same_batches(left: list[dict], right: list[dict]) -> None:
    for one, other in zip(left, right, strict=True):
        assert one.keys() == other.keys()
        for key in one:
            assert torch.equal(one[key], other[key]), key


@pytest.fixture
def counted_decodes(monkeypatch):
    """How many images and masks were decoded from their files."""
    calls = {"image": 0, "mask": 0}
    decode_image, read_mask = loaders.decode_image, loaders.read_mask

    def count(kind, function):
        def counted(*args, **kwargs):
            calls[kind] += 1
            return function(*args, **kwargs)
        return counted

    monkeypatch.setattr(loaders, "decode_image", count("image", decode_image))
    monkeypatch.setattr(loaders, "read_mask", count("mask", read_mask))
    return calls


def test_batches_through_the_cache_equal_decoded_ones_and_a_second_read_decodes_nothing(
        split_dataset, tmp_path, monkeypatch, counted_decodes):
    decoded = batches(split_dataset)
    counted_decodes.update(image=0, mask=0)
    monkeypatch.setenv(ENVIRONMENT, str(tmp_path / "cache"))

    first = batches(split_dataset)
    stored = sorted((tmp_path / "cache").rglob("*.npy"))
    decodes = dict(counted_decodes)
    second = batches(split_dataset)

    assert_same_batches(first, decoded)
    assert_same_batches(second, decoded)
    assert len(stored) == decodes["image"] + decodes["mask"] > 0
    assert counted_decodes == decodes  # the second pass read every file from the cache
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_loader_workers_fill_the_cache_the_training_process_names(split_dataset, tmp_path, monkeypatch):
    decoded = batches(split_dataset)
    monkeypatch.setenv(ENVIRONMENT, str(tmp_path / "cache"))

    assert_same_batches(batches(split_dataset, num_workers=2), decoded)
    assert list((tmp_path / "cache").rglob("*.npy"))


def test_an_edited_file_is_decoded_again(tmp_path):
    source = tmp_path / "a.png"
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(source)
    cache = DecodeCache(tmp_path / "cache")
    assert cache.load(source, lambda: loaders.decode_image(source)).max() == 0

    Image.fromarray(np.full((4, 6, 3), 7, np.uint8)).save(source)
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a filesystem's coarse clock

    assert (cache.load(source, lambda: loaders.decode_image(source)) == 7).all()


def test_a_variant_is_its_own_entry_and_a_damaged_entry_is_decoded_again(tmp_path):
    source = tmp_path / "mask.png"
    source.write_bytes(b"any file")
    cache = DecodeCache(tmp_path / "cache")
    cache.load(source, lambda: np.zeros((2, 2), np.uint8), "colours A")
    assert cache.load(source, lambda: np.ones((2, 2), np.uint8), "colours B").max() == 1
    for entry in (tmp_path / "cache").rglob("*.npy"):
        entry.write_bytes(entry.read_bytes()[:20])  # torn by a failing disk

    assert (cache.load(source, lambda: np.full((2, 2), 5, np.uint8), "colours A") == 5).all()
    assert (cache.load(source, lambda: 1 / 0, "colours A") == 5).all()  # stored again


def test_a_folder_it_cannot_write_warns_once_and_decodes(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    source = tmp_path / "a.bin"
    source.write_bytes(b"x")
    cache = DecodeCache(blocked)

    with pytest.warns(RuntimeWarning, match=f"{ENVIRONMENT}=.*cannot store decoded files") as warned:
        for value in (1, 2):
            assert (cache.load(source, lambda value=value: np.full(3, value)) == value).all()
    assert len(warned) == 1


def test_a_missing_image_is_named_as_without_the_cache(split_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv(ENVIRONMENT, str(tmp_path / "cache"))
    data = build_training_data(split_dataset, labeled="all", seed=0, crop_size=CROP)
    missing = data.labeled.index.by_id[data.labeled.ids[0]].image
    missing.unlink()

    with pytest.raises(DatasetError, match=f"images/{missing.name}"):
        data.labeled.load(0)


def test_nothing_is_stored_while_the_disk_is_nearly_full(tmp_path, monkeypatch):
    import engine.data.decode_cache as decode_cache

    full = decode_cache.shutil.disk_usage(tmp_path)._replace(free=0)
    monkeypatch.setattr(decode_cache.shutil, "disk_usage", lambda path: full)
    source = tmp_path / "a.bin"
    source.write_bytes(b"x")
    cache = DecodeCache(tmp_path / "cache")

    with pytest.warns(RuntimeWarning, match="would be left free"):
        assert (cache.load(source, lambda: np.full(3, 4)) == 4).all()
    assert not list((tmp_path / "cache").rglob("*.np*"))
