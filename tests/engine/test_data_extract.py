"""extract_zip: streamed, all-or-nothing extraction that refuses traversal and zip bombs."""
from __future__ import annotations

import stat
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from engine.data import DatasetError, Limits, extract_zip


def make_zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def forge_sizes(archive: Path, name: str, file_size: int) -> None:
    """Rewrite the uncompressed size of ``name`` in its local header and central directory entry."""
    data = bytearray(archive.read_bytes())
    encoded = name.encode()
    local = data.find(b"PK\x03\x04")
    while local != -1:
        name_length = struct.unpack_from("<H", data, local + 26)[0]
        if bytes(data[local + 30:local + 30 + name_length]) == encoded:
            struct.pack_into("<I", data, local + 22, file_size)
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_length = struct.unpack_from("<H", data, central + 28)[0]
        if bytes(data[central + 46:central + 46 + name_length]) == encoded:
            struct.pack_into("<I", data, central + 24, file_size)
        central = data.find(b"PK\x01\x02", central + 4)
    archive.write_bytes(bytes(data))


def test_extracts_and_steps_into_a_wrapping_folder(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"mydata/images/a.png": b"x", "mydata/masks/a.png": b"y",
                                            "__MACOSX/mydata/._a.png": b"junk"})
    root = extract_zip(archive, tmp_path / "out")
    assert root == tmp_path / "out" / "mydata"
    assert (root / "images" / "a.png").read_bytes() == b"x"
    assert not (tmp_path / "out" / "__MACOSX").exists()


@pytest.mark.parametrize("name, message", [
    ("/etc/evil.png", "absolute path in the zip"),
    ("C:/evil.png", "absolute path in the zip"),
    ("images/../../evil.png", "path leaves the dataset folder"),
])
def test_path_traversal_is_refused_before_writing(tmp_path, name, message):
    archive = make_zip(tmp_path / "a.zip", {"images/a.png": b"x", name: b"evil"})
    with pytest.raises(DatasetError) as error:
        extract_zip(archive, tmp_path / "out")
    assert error.value.errors == [(name, error.value.errors[0][1])] and message in error.value.errors[0][1]
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.png").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a.zip"]  # no staging folder left behind


def test_symbolic_links_are_refused(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        link = zipfile.ZipInfo("images/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(DatasetError, match="symbolic link"):
        extract_zip(archive, tmp_path / "out")


def test_a_name_stored_twice_is_refused(tmp_path):
    archive = tmp_path / "a.zip"
    with pytest.warns(UserWarning), zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("images/a.png", b"x")
        zf.writestr("images/a.png", b"y")
    with pytest.raises(DatasetError, match="stored twice"):
        extract_zip(archive, tmp_path / "out")


def test_too_many_files(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {f"images/{i}.png": b"x" for i in range(5)})
    with pytest.raises(DatasetError, match="holds 5 files, more than the limit of 4"):
        extract_zip(archive, tmp_path / "out", Limits(max_files=4))


def test_declared_size_over_the_limit_is_refused_before_writing(tmp_path):
    # The 2 GB case without 2 GB: a header declaring 3 GB is refused from the directory alone.
    archive = make_zip(tmp_path / "a.zip", {"images/big.png": b"x" * 1000})
    forge_sizes(archive, "images/big.png", 3 * 1024**3)
    with pytest.raises(DatasetError, match="unpacks to 3221225472 bytes, more than the limit"):
        extract_zip(archive, tmp_path / "out", Limits(max_bytes=2 * 1024**3))
    assert not (tmp_path / "out").exists()


def test_forged_header_that_understates_the_size_cannot_unpack_a_bomb(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"images/a.png": b"x", "images/bomb.png": bytes(4 * 1024 * 1024)})
    forge_sizes(archive, "images/bomb.png", 1000)
    with pytest.raises(DatasetError) as error:
        extract_zip(archive, tmp_path / "out", Limits(max_bytes=10_000))
    assert error.value.errors[0][0] == "images/bomb.png"
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a.zip"]


def test_compression_ratio_of_a_bomb_is_refused(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"images/bomb.png": bytes(8 * 1024 * 1024)})
    with pytest.raises(DatasetError, match="compresses .*:1, more than the limit of 100:1"):
        extract_zip(archive, tmp_path / "out")


def test_members_are_streamed_not_loaded(tmp_path):
    payload = bytes(range(256)) * (32 * 1024)  # 8 MiB, stored: a big image-like member
    archive = make_zip(tmp_path / "a.zip", {"images/big.png": payload}, zipfile.ZIP_STORED)
    tracemalloc.start()
    try:
        root = extract_zip(archive, tmp_path / "out")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (root / "images" / "big.png").stat().st_size == len(payload)
    assert peak < 3 * 1024 * 1024


def test_not_a_zip(tmp_path):
    (tmp_path / "a.zip").write_bytes(b"hello")
    with pytest.raises(DatasetError, match="is not a valid zip file"):
        extract_zip(tmp_path / "a.zip", tmp_path / "out")


def test_destination_must_be_empty(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"images/a.png": b"x"})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not an empty folder"):
        extract_zip(archive, tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("name", ["images/" + "a" * 252 + ".png", "images/" + "é" * 126 + ".png",
                                  "data/" + "f" * 256 + "/a.png"], ids=["ascii", "two-byte", "folder"])
def test_a_name_longer_than_file_systems_allow_is_refused_before_writing(tmp_path, name):
    archive = make_zip(tmp_path / "a.zip", {"images/a.png": b"x", name: b"y"})
    with pytest.raises(DatasetError) as error:
        extract_zip(archive, tmp_path / "out")
    assert error.value.errors == [(name, error.value.errors[0][1])]
    assert "at most 255 bytes (UTF-8) per name" in error.value.errors[0][1]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("members, culprit, message", [
    ({"images/a.png": b"x", "images/a.png/b.png": b"y"}, "images/a.png/b.png", "a file and a folder in the zip"),
    ({"/".join(["d" * 250] * 20) + "/a.png": b"x"}, "/".join(["d" * 250] * 20) + "/a.png", "path is too long"),
], ids=["file-and-folder", "path-too-long"])
def test_a_member_that_cannot_be_written_is_named_in_plain_words(tmp_path, members, culprit, message):
    archive = make_zip(tmp_path / "a.zip", members)
    with pytest.raises(DatasetError) as error:
        extract_zip(archive, tmp_path / "out")
    [(file, text)] = error.value.errors
    assert file == culprit and message in text
    assert str(tmp_path) not in text and "Errno" not in text
    assert [p.name for p in tmp_path.iterdir()] == ["a.zip"]  # no staging folder left behind


def test_the_archive_is_named_as_the_user_named_it(tmp_path):
    (tmp_path / "upload.zip").write_bytes(b"hello")
    with pytest.raises(DatasetError) as error:
        extract_zip(tmp_path / "upload.zip", tmp_path / "out", display_name="holiday photos.zip")
    assert error.value.errors[0][0] == "holiday photos.zip"
    with pytest.raises(DatasetError) as error:
        extract_zip(tmp_path / "upload.zip", tmp_path / "out")
    assert error.value.errors[0][0] == "upload.zip"  # by default, the file's own name


def test_a_missing_archive_is_named_without_its_folder(tmp_path):
    with pytest.raises(DatasetError) as error:
        extract_zip(tmp_path / "gone.zip", tmp_path / "out", display_name="mine.zip")
    [(file, message)] = error.value.errors
    assert file == "mine.zip" and str(tmp_path) not in message
