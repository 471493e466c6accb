"""Safe zip extraction: streamed to disk, all or nothing.

Refused before a byte is written: absolute paths and ``..`` (path traversal, the
"zip slip" bug), symbolic links, encrypted members, repeated names, names a file system
cannot store (a folder or file name over 255 bytes), more files or more declared bytes
than the limits, and members whose compression ratio only a zip bomb reaches. While
writing, real bytes are counted, so a forged header that under-declares a member's size
cannot let a bomb through (``zipfile`` also stops at the declared size and then fails the
CRC check, which is reported as a corrupt member); a member the file system refuses is
named in plain words. Members are copied in 1 MiB chunks: a 2 GB archive never sits in
memory. Extraction goes to a hidden sibling folder that is renamed into place only when
everything succeeded, so nothing half-written survives a failure. Messages name members
as the zip does and the archive by the name the user gave it, never by where the server
keeps it.
"""
from __future__ import annotations

import errno
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from engine.data.errors import DatasetError, without_paths
from engine.data.layouts import find_dataset_root
from engine.data.limits import Limits
from engine.data.staging import fill_new_folder

CHUNK = 1024 * 1024
#: Written by macOS's archiver beside every file; not part of the dataset.
SKIPPED_PREFIXES = ("__MACOSX/",)
#: Longest file or folder name, in UTF-8 bytes, that common file systems (ext4, XFS, APFS) store.
MAX_NAME_BYTES = 255


def _member_errors(members: list[zipfile.ZipInfo], limits: Limits) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    seen: set[str] = set()
    for info in members:
        name = info.filename
        parts = PurePosixPath(name).parts
        key = "/".join(parts)  # `a//b`, `a/./b` and `a/b/` all write `a/b`
        too_long = [len(part.encode("utf-8")) for part in parts if len(part.encode("utf-8")) > MAX_NAME_BYTES]
        if name.startswith("/") or (parts and parts[0].endswith(":")):
            errors.append((name, "absolute path in the zip; store paths relative to the dataset root"))
        elif "\\" in name:
            errors.append((name, "backslash in the path; zip paths separate folders with /"))
        elif ".." in parts:
            errors.append((name, "path leaves the dataset folder (`..`); refused"))
        elif stat.S_ISLNK(info.external_attr >> 16):
            errors.append((name, "symbolic link in the zip; store the file itself"))
        elif info.flag_bits & 0x1:
            errors.append((name, "encrypted member; upload an unencrypted zip"))
        elif not info.is_dir() and name.rsplit("/", 1)[-1] in ("", "."):
            errors.append((name, "member without a file name"))
        elif too_long:
            errors.append((name, f"a file or folder name in this path is {too_long[0]} bytes long; "
                                 f"file systems store at most {MAX_NAME_BYTES} bytes (UTF-8) per name"))
        elif key in seen:
            errors.append((name, "stored twice in the zip"))
        elif (info.file_size > limits.ratio_min_bytes
              and info.file_size > limits.max_compression_ratio * max(1, info.compress_size)):
            errors.append((name, f"compresses {info.file_size / max(1, info.compress_size):.0f}:1, more than the limit "
                                 f"of {limits.max_compression_ratio:.0f}:1 (a zip bomb?); "
                                 "images are already compressed"))
        seen.add(key)
    files = [info for info in members if not info.is_dir()]
    if len(files) > limits.max_files:
        errors.append(("", f"the zip holds {len(files)} files, more than the limit of {limits.max_files}"))
    declared = sum(info.file_size for info in files)
    if declared > limits.max_bytes:
        errors.append(("", f"the zip unpacks to {declared} bytes, more than the limit of {limits.max_bytes}"))
    return errors


def _write_members(zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], target: Path, limits: Limits) -> None:
    written = 0
    for info in members:
        path = target / info.filename
        member_bytes = 0
        try:
            if info.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as source, open(path, "wb") as sink:
                while chunk := source.read(CHUNK):
                    member_bytes += len(chunk)
                    written += len(chunk)
                    if member_bytes > info.file_size or written > limits.max_bytes:
                        raise DatasetError([(info.filename, "unpacks to more bytes than its header declares or than "
                                                            f"the limit of {limits.max_bytes} bytes; refused")])
                    sink.write(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as error:
            raise DatasetError([(info.filename, f"corrupt member ({without_paths(str(error))}); "
                                                "its header may not match its data")]) from None
        except OSError as error:
            raise DatasetError([(info.filename, _write_problem(error))]) from None


def _write_problem(error: OSError) -> str:
    """Why a member could not be written, in the user's words (the staging folder is the server's business)."""
    if error.errno == errno.ENAMETOOLONG:
        return "its path is too long for the file system; use shorter folder and file names"
    if error.errno in (errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
        return "a file and a folder in the zip have this same name; rename one of them"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the server ran out of disk space while unpacking the zip; nothing was stored, try again later"
    return f"could not be unpacked ({error.strerror or error.__class__.__name__})"


def extract_zip(archive: str | Path, destination: str | Path, limits: Limits | None = None,
                display_name: str | None = None) -> Path:
    """Extract ``archive`` into ``destination`` (absent or empty) and return the dataset root in it.

    A single wrapping folder (``mydata/images/...``) is stepped into. Raises
    DatasetError naming each refused member; ``destination`` is then left as it was.
    ``display_name`` is what messages call the archive (the name the user uploaded it
    under; by default its file name).
    """
    limits = limits or Limits()
    destination = Path(destination)
    display_name = display_name or Path(archive).name
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise DatasetError([(str(destination), "extraction target exists and is not an empty folder")])
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        detail = "a file name in it is not valid UTF-8" if isinstance(error, UnicodeDecodeError) else str(error)
        raise DatasetError([(display_name, f"is not a valid zip file ({without_paths(detail)})")]) from None
    with zf:
        members = [info for info in zf.infolist() if not info.filename.startswith(SKIPPED_PREFIXES)]
        errors = _member_errors(members, limits)
        if errors:
            raise DatasetError(errors)
        fill_new_folder(destination, lambda staging: _write_members(zf, members, staging, limits))
    return find_dataset_root(destination)
