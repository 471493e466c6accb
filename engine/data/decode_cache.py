"""Decoded images and masks kept on disk as raw arrays, so a host decodes each file once.

A loader worker spends most of a sample on decoding: a 2048x1024 PNG (Cityscapes' size)
took 36-66 ms to decode on the machines of docs/benchmarks.md, against about 10 ms for
the crop, resize, flip and normalisation that follow, and a training run reads every
labelled image hundreds of times. With ``SEGLAB_DECODE_CACHE=FOLDER`` the first read of a
file stores its decoded pixels there as an ``.npy`` array; later reads map that file into
memory, and the crop touches only the pages of its own window (0.4 ms for a 1024x1024
window of a 2048x1024 image in the page cache). Storing raw pixels rather than an encoded
file is what FFCV does for the same reason (Leclerc et al., CVPR 2023, arXiv:2306.12517).

The price is disk: height x width x 3 bytes per image and height x width per mask
(6.3 MB and 2.1 MB at 2048x1024), which is why it is a setting of the machine and off when
unset. Entries stop being stored while the cache's filesystem would have less than
``MIN_FREE_FRACTION`` of its space free, so the cache never fills the disk it shares (a
Kubernetes node's, whose kubelet evicts pods when it runs low); what is stored is still read.
An entry is keyed by the source file's absolute path, size and modification time (and, for
masks, the colour table that maps them to classes), so an edited or replaced file is
decoded again; entries are written to a temporary name and renamed into place, so
processes that share a folder never read half an array. Nothing is ever removed: delete
the folder to reclaim the space.
"""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENVIRONMENT = "SEGLAB_DECODE_CACHE"
#: Below this share of free space on its filesystem, nothing more is stored (reads go on).
MIN_FREE_FRACTION = 0.15
#: Changes when what an entry holds changes, which leaves the old entries unused.
LAYOUT = "1"


@dataclass(frozen=True)
class DecodeCache:
    """Where decoded arrays are kept; ``folder=None`` decodes every time."""

    folder: Path | None = None

    @classmethod
    def from_environment(cls) -> DecodeCache:
        value = os.environ.get(ENVIRONMENT, "").strip()
        return cls(Path(value).expanduser().resolve() if value else None)

    def load(self, path: str | Path, decode: Callable[[], np.ndarray], variant: str = "") -> np.ndarray:
        """The array ``decode()`` returns for the file at ``path``: from the folder when it holds
        it (a copy-on-write memory map: writable, never written back), else decoded and stored.
        ``variant`` names whatever else the decoded array depends on."""
        if self.folder is None:
            return decode()
        try:
            entry = self._entry(Path(path), variant)
        except OSError:  # the source is missing or unreadable: decode() says so in its own words
            return decode()
        try:
            return np.load(entry, mmap_mode="c", allow_pickle=False)
        except (OSError, ValueError):  # not stored yet, or not an array (a damaged disk): decode it
            pass
        array = decode()
        self._store(entry, array)
        return array

    def _entry(self, path: Path, variant: str) -> Path:
        assert self.folder is not None
        stat = path.stat()
        source = "\0".join((LAYOUT, str(path.resolve()), str(stat.st_size), str(stat.st_mtime_ns), variant))
        key = hashlib.sha256(source.encode()).hexdigest()
        return self.folder / key[:2] / f"{key}.npy"

    def _store(self, entry: Path, array: np.ndarray) -> None:
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            usage = shutil.disk_usage(entry.parent)
            if usage.free - array.nbytes < MIN_FREE_FRACTION * usage.total:
                raise OSError(errno.ENOSPC, f"less than {MIN_FREE_FRACTION:.0%} of its disk would be left free")
            handle, temporary = tempfile.mkstemp(dir=entry.parent, suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as file:
                    np.save(file, np.ascontiguousarray(array), allow_pickle=False)
                os.replace(temporary, entry)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError as error:  # full or read-only disk: the run goes on decoding
            if self.folder not in _warned:  # once per process and folder, not once per file
                _warned.add(self.folder)
                warnings.warn(f"{ENVIRONMENT}={self.folder}: cannot store decoded files there ({error}); "
                              "decoding them each time instead", RuntimeWarning, stacklevel=3)


_warned: set[Path | None] = set()
