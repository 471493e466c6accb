"""Writing a folder whole or not at all."""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def fill_new_folder(destination: Path, write: Callable[[Path], object]) -> Path:
    """Run ``write(staging)`` in a hidden sibling folder, then rename it to ``destination``.

    ``destination`` must be absent or empty (callers check it, in their own words). If
    ``write`` or the rename fails (another writer filled ``destination`` first) the staging
    folder is removed, so no half-written folder survives.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=destination.parent))
    try:
        write(staging)
        if destination.exists():
            destination.rmdir()
        staging.rename(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination
