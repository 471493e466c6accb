"""The dataset error, and how a file that cannot be read is described to the user.

Messages name files relative to the dataset (or zip) and never show a server path: an
upload is unpacked into a staging folder whose location means nothing to the user.
"""
from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

from PIL import Image, UnidentifiedImageError

#: An absolute path inside an exception's text (``'/srv/media/.staging-1f/images/a.png'``).
ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])(?:[A-Za-z]:)?/[^\s'\"]+")
#: An exception's text is quoted up to this many characters.
MAX_DETAIL = 200


class DatasetError(ValueError):
    """Every problem found in a dataset; ``errors`` is a list of (file, message).

    The one shape of a refused dataset, from the engine's checks to the upload page and the
    API (``problems``). A single string is read as one message about no file in particular,
    so the error can be rebuilt from its text (as a DataLoader worker process does when it
    forwards it).
    """

    def __init__(self, errors: list[tuple[str, str]] | str):
        self.errors = [("", errors)] if isinstance(errors, str) else list(errors)
        shown = "; ".join(f"{file}: {message}" if file else message for file, message in self.errors[:20])
        more = f" (and {len(self.errors) - 20} more)" if len(self.errors) > 20 else ""
        super().__init__(shown + more)

    @property
    def problems(self) -> list[dict[str, str]]:
        """The errors as the upload page and the API send them: ``[{"file": ..., "message": ...}]``."""
        return [{"file": file, "message": message} for file, message in self.errors]


def without_paths(text: str, root: str | Path | None = None) -> str:
    """``text`` with paths under ``root`` made relative to it and any other absolute path cut to its file name."""
    if root is not None:
        text = text.replace(f"{Path(root).as_posix().rstrip('/')}/", "")
    return ABSOLUTE_PATH.sub(lambda match: Path(match.group(0)).name, text)


def read_problem(error: BaseException, root: str | Path | None = None) -> str:
    """What went wrong opening or decoding an image file, in the user's words."""
    if isinstance(error, UnidentifiedImageError):
        return "not an image file Pillow can read (save it as PNG, JPEG, BMP, TIFF or WebP)"
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return "declares more pixels than can be decoded safely (a decompression bomb?); refused"
    if isinstance(error, FileNotFoundError):
        return "the file is missing (was the dataset folder changed after it was checked?)"
    if isinstance(error, OSError) and error.errno is not None:
        return f"the file cannot be read ({error.strerror})"
    detail = without_paths(str(error), root)[:MAX_DETAIL] or error.__class__.__name__
    if isinstance(error, (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error)):
        return f"image data is corrupt or truncated ({detail})"
    return f"image data cannot be decoded ({error.__class__.__name__}: {detail})"
