"""Built-in datasets, each written by a generator to the upload layout (images/, masks/,
classes.json, splits/), so they travel the same path as a user's upload.

``generate(name, out_dir, **options)`` is the one entry point (``python -m engine dataset
NAME OUT_DIR --option NAME=VALUE`` calls it); ``GENERATORS`` is the registry that lists
them with their options (``python -m engine list``).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.data.staging import fill_new_folder
from engine.options import clean_options
from engine.registry import Registry

GENERATORS: Registry[Callable[..., Path]] = Registry("built-in dataset")
register_generator = GENERATORS.register


def generate(name: str, out_dir: str | Path, **options: Any) -> Path:
    """Write built-in dataset ``name`` into ``out_dir`` (absent or empty) and return it.

    Options are validated against the generator's registered options (unknown or
    out-of-range values raise ``OptionError`` naming them). The files are written to a
    hidden sibling folder that is renamed into place when complete, so an interrupted
    run never leaves a half-written dataset behind.
    """
    entry = GENERATORS.get(name)
    cleaned = clean_options(entry.options, options)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not empty; choose a new folder for the `{name}` dataset")
    return fill_new_folder(out, lambda staging: entry.factory(staging, **cleaned))


from engine.data.builtin import demo, fashion  # noqa: E402,F401  (registration)
