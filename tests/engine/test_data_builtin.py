"""Built-in dataset generators: valid, deterministic, and honest about their sources."""
from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from engine import cli
from engine.data import inspect_dataset, load_index
from engine.data.builtin import GENERATORS, generate
from engine.data.builtin.fashion import DEFAULT_SOURCE, read_idx
from engine.data.masks import read_mask
from engine.options import OptionError

FASHION = ["fashion-scenes", "fashion-scenes-shifted"]


def write_idx(path: Path, array: np.ndarray, gzipped: bool) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if gzipped else payload)


@pytest.fixture
def fake_source(tmp_path) -> Path:
    """Tiny IDX files: the train file holds only T-shirts (label 0), the test file only trousers (1)."""
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    garment = np.zeros((28, 28), dtype=np.uint8)
    garment[4:24, 8:20] = 200
    for split, label, gzipped in (("train", 0, True), ("t10k", 1, False)):
        suffix = ".gz" if gzipped else ""
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", np.stack([garment] * 20), gzipped)
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", np.full(20, label), gzipped)
    return folder


def digest(root: Path) -> str:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "dataset.json")
    return hashlib.sha256(b"".join(p.relative_to(root).as_posix().encode() + p.read_bytes() for p in files)).hexdigest()


def test_registry_lists_the_generators():
    assert {"demo", *FASHION} <= set(GENERATORS.names())


def test_demo_is_a_valid_dataset(tmp_path):
    info = inspect_dataset(generate("demo", tmp_path / "demo", num_images=6, num_unlabeled=2, size=32))
    assert (info.num_labeled, info.num_unlabeled, info.num_classes) == (6, 2, 5)


def test_read_idx_reads_gzipped_and_plain_files(fake_source):
    assert read_idx(fake_source / "train-images-idx3-ubyte.gz").shape == (20, 28, 28)
    assert read_idx(fake_source / "t10k-labels-idx1-ubyte").tolist() == [1] * 20


def test_read_idx_refuses_other_files(tmp_path):
    (tmp_path / "x").write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not a uint8 IDX file"):
        read_idx(tmp_path / "x")


def test_fashion_scenes_from_a_source_folder(tmp_path, fake_source):
    root = generate("fashion-scenes", tmp_path / "fs", num_train=8, num_val=4, source=str(fake_source))
    info = inspect_dataset(root)
    assert [c["name"] for c in info.classes] == ["background", "tops", "trousers", "dresses", "footwear", "bags"]
    assert (info.num_train, info.num_val) == (8, 4)
    index = load_index(root)
    table = index.label_table()

    def classes_in(ids):
        return set().union(*(np.unique(table[read_mask(index.by_id[i].mask)]).tolist() for i in ids))

    # Training canvases only from the official train file (T-shirts -> tops), validation only from the test file.
    assert classes_in(index.train_ids) == {0, 1}
    assert classes_in(index.val_ids) == {0, 2}


def test_fine_classes(tmp_path, fake_source):
    info = inspect_dataset(generate("fashion-scenes", tmp_path / "fs", num_train=2, num_val=2, classes="fine",
                                    source=str(fake_source)))
    assert info.num_classes == 11 and info.classes[10]["name"] == "ankle boot"


def test_shifted_needs_only_the_test_file(tmp_path, fake_source):
    for path in fake_source.glob("train-*"):
        path.unlink()
    info = inspect_dataset(generate("fashion-scenes-shifted", tmp_path / "shifted", num_train=4, num_val=4, size=32,
                                    source=str(fake_source)))
    assert (info.num_train, info.num_val) == (4, 4) and info.image_sizes["max_width"] == 32


@pytest.mark.parametrize("name", FASHION)
def test_deterministic_for_a_seed(tmp_path, fake_source, name):
    options = dict(num_train=3, num_val=2, source=str(fake_source))
    first = digest(generate(name, tmp_path / "a", seed=1, **options))
    assert digest(generate(name, tmp_path / "b", seed=1, **options)) == first
    assert digest(generate(name, tmp_path / "c", seed=2, **options)) != first


def test_options_are_validated(tmp_path):
    with pytest.raises(OptionError) as error:
        generate("fashion-scenes", tmp_path / "x", classes="medium", colour="red")
    assert set(error.value.errors) == {"classes", "colour"}
    assert not (tmp_path / "x").exists()


def test_missing_source_says_what_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        generate("fashion-scenes", tmp_path / "x", source=str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == []  # no half-written dataset


def test_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep").write_text("mine")
    with pytest.raises(FileExistsError):
        generate("demo", tmp_path / "x")


def test_command_line(tmp_path, fake_source, capsys):
    assert cli.main(["dataset", "fashion-scenes", str(tmp_path / "cli"), "--option", "num_train=2",
                     "--option", "num_val=2", "--option", f"source={fake_source}"]) == 0
    assert "wrote 4 images (2 train, 2 val)" in capsys.readouterr().out
    assert cli.main(["dataset", "demo", str(tmp_path / "bad"), "--option", "size=huge"]) == 2


@pytest.mark.skipif(not DEFAULT_SOURCE.exists(), reason="Debian package dataset-fashion-mnist is not installed")
def test_real_fashion_mnist(tmp_path):
    info = inspect_dataset(generate("fashion-scenes", tmp_path / "fs", num_train=16, num_val=8))
    assert info.num_images == 24 and info.classes[0]["pixel_share"] < 0.95
