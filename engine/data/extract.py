"""Safe zip extraction: no absolute paths, no `..`, no zip bombs, streamed to disk."""
from __future__ import annotations

import shutil
import zipfile
from pathlib import Path, PurePosixPath

from engine.data.errors import DatasetError

CHUNK = 1024 * 1024


def _common_root(names: list[str]) -> str | None:
    """A single top folder wrapping the dataset (`mydata/images/...`) is stripped."""
    tops = {PurePosixPath(name).parts[0] for name in names if PurePosixPath(name).parts}
    if len(tops) == 1:
        top = tops.pop()
        if all(len(PurePosixPath(name).parts) > 1 or name.endswith("/") for name in names) and top not in ("images", "masks"):
            return top
    return None


def extract_zip(archive: str | Path, destination: str | Path, limits=None) -> Path:
    """Extract ``archive`` into ``destination`` and return the dataset root inside it."""
    from engine.data.inspect import Limits

    limits = limits or Limits()
    destination = Path(destination)
    errors: list[tuple[str, str]] = []
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise DatasetError([(Path(archive).name, "is not a valid zip file")]) from None
    with zf:
        members = [info for info in zf.infolist() if not info.filename.startswith("__MACOSX/")]
        for info in members:
            name = info.filename
            parts = PurePosixPath(name).parts
            if name.startswith("/") or "\\" in name or (parts and parts[0].endswith(":")):
                errors.append((name, "absolute path in the zip; store paths relative to the dataset root"))
            elif ".." in parts:
                errors.append((name, "path leaves the dataset folder (`..`); refused"))
        if len(members) > limits.max_files:
            errors.append(("", f"the zip holds {len(members)} files, more than the limit of {limits.max_files}"))
        declared = sum(info.file_size for info in members)
        if declared > limits.max_bytes:
            errors.append(("", f"the zip unpacks to {declared} bytes, more than the limit of {limits.max_bytes}"))
        if errors:
            raise DatasetError(errors)
        destination.mkdir(parents=True, exist_ok=True)
        written = 0
        for info in members:
            target = destination / info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as source, open(target, "wb") as sink:
                # Count real bytes: a forged header must not let a bomb through.
                while chunk := source.read(CHUNK):
                    written += len(chunk)
                    if written > limits.max_bytes:
                        raise DatasetError([("", f"the zip unpacks to more than {limits.max_bytes} bytes")])
                    sink.write(chunk)
        root = _common_root([info.filename for info in members])
    return destination / root if root else destination


def remove_tree(path: str | Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
