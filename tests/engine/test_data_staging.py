"""A folder is written whole or not at all, even when another writer fills it first."""
import pytest

from engine.data.staging import fill_new_folder


def test_a_failed_write_leaves_nothing(tmp_path):
    def fail(staging):
        (staging / "half.txt").write_text("half")
        raise ValueError("bad member")

    with pytest.raises(ValueError, match="bad member"):
        fill_new_folder(tmp_path / "out", fail)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_another_writer_filled_first_is_kept_and_the_staging_removed(tmp_path):
    destination = tmp_path / "out"

    def write_while_another_finishes(staging):
        (staging / "mine.txt").write_text("mine")
        destination.mkdir()
        (destination / "theirs.txt").write_text("theirs")

    with pytest.raises(OSError):
        fill_new_folder(destination, write_while_another_finishes)
    assert [path.name for path in tmp_path.iterdir()] == ["out"]
    assert [path.name for path in destination.iterdir()] == ["theirs.txt"]
