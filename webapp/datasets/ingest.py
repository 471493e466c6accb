"""Turning an uploaded zip into a Dataset: all or nothing.

Every refusal is the engine's ``DatasetError`` (file, message pairs), shown as such by the
upload page and the API (``DatasetError.problems``).

The zip is extracted into a staging folder and validated by the engine
(``engine.data.inspect_dataset``, the one validator). Only a valid dataset is moved to
its final folder and gets a row; on any error the staging folder is removed, so a failed
upload leaves no row and no file behind.
"""
from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from engine.data import DatasetError, extract_zip, inspect_dataset
from engine.data.preview import sample_sheet, write_samples
from webapp.datasets.models import Dataset
from webapp.teams.models import Team

DATASETS_DIR = "datasets"
#: Widest preview sheet stored; sheets of large images are scaled down to it.
PREVIEW_MAX_WIDTH = 1600
PREVIEW_COLUMNS = 4
#: Labelled samples the dataset page overlays in the browser, and their longest side in pixels.
SAMPLE_COUNT = 12
SAMPLE_MAX_SIDE = 384

logger = logging.getLogger(__name__)


def _staging_dir() -> Path:
    path = Path(settings.MEDIA_ROOT) / DATASETS_DIR / f".staging-{uuid.uuid4().hex}"
    path.mkdir(parents=True)
    return path


def ingest_folder(team: Team, name: str, source: Path, user=None, description: str = "") -> Dataset:
    """Register an already extracted folder (inside a staging dir this function owns)."""
    info = inspect_dataset(source)
    final = Path(settings.MEDIA_ROOT) / DATASETS_DIR / uuid.uuid4().hex
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source, final)
    try:
        write_preview(final)
        write_sample_pictures(final)
        with transaction.atomic():
            return Dataset.objects.create(
                team=team, name=name, description=description, created_by=user,
                storage_path=str(final.relative_to(settings.MEDIA_ROOT)), classes=info.classes,
                num_images=info.num_images, num_labeled=info.num_labeled, num_unlabeled=info.num_unlabeled,
                info=info.to_dict(), size_bytes=disk_usage(final),
            )
    except IntegrityError:
        remove_dataset_files(final)
        raise DatasetError(f"the team already has a dataset named {name!r}") from None
    except BaseException:
        remove_dataset_files(final)
        raise


def preview_path(folder: Path) -> Path:
    return folder.with_name(folder.name + ".preview.png")


def write_preview(folder: Path) -> None:
    """A sheet of labelled samples beside their colour masks, shown on the dataset page.

    Raises DatasetError if the sheet cannot be drawn (``_refused_unless_drawn``).
    """
    from PIL import Image

    with _refused_unless_drawn(folder, "preview", "its preview picture"):
        path = sample_sheet(folder, preview_path(folder), scale=1, columns=PREVIEW_COLUMNS,
                            max_tile_width=PREVIEW_MAX_WIDTH // PREVIEW_COLUMNS)
        with Image.open(path) as sheet:
            if sheet.width > PREVIEW_MAX_WIDTH:
                sheet.thumbnail((PREVIEW_MAX_WIDTH, PREVIEW_MAX_WIDTH * sheet.height // sheet.width))
                sheet.save(path)


@contextmanager
def _refused_unless_drawn(folder: Path, what: str, picture: str) -> Iterator[None]:
    """A picture the page shows that cannot be drawn refuses the dataset whole, like any other
    problem with it, instead of failing the request: the file at fault, or the server log."""
    try:
        yield
    except DatasetError as error:
        found = [(file, f"{message} (found while drawing the {what})") for file, message in error.errors]
        raise DatasetError(found) from None
    except Exception:
        logger.exception("drawing the %s of %s failed", what, folder)
        raise DatasetError(f"the dataset passed its checks but {picture} could not be drawn; "
                           "nothing was stored (the server log has the details)") from None


def samples_path(folder: Path) -> Path:
    return folder.with_name(folder.name + ".samples")


def write_sample_pictures(folder: Path) -> list[dict]:
    """The samples the dataset page overlays (``engine.data.preview.write_samples``); raises DatasetError.

    Like the preview sheet, they sit beside the dataset folder, never inside it, so the
    engine's file listing and fingerprint of the dataset do not see them.
    """
    with _refused_unless_drawn(folder, "samples", "its sample pictures"):
        return write_samples(folder, samples_path(folder), count=SAMPLE_COUNT, max_side=SAMPLE_MAX_SIDE)


def disk_usage(folder: Path) -> int:
    """Bytes of the dataset's files on disk: its folder, preview sheet and sample pictures.

    Walked once, at upload (and by the migration that filled in older datasets), and stored.
    """
    total = 0
    for path in (folder, preview_path(folder), samples_path(folder)):
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            total += sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())
    return total


def remove_dataset_files(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(samples_path(folder), ignore_errors=True)
    preview_path(folder).unlink(missing_ok=True)


def _display_name(archive) -> str:
    """The zip as the user calls it (an upload's own file name), never where the server keeps it."""
    name = getattr(archive, "name", None) or (archive if isinstance(archive, (str, Path)) else "")
    return Path(name).name or "the uploaded zip"


def ingest_zip(team: Team, name: str, archive, user=None, description: str = "") -> Dataset:
    """``archive``: a path or an uploaded file (Django keeps large ones on disk)."""
    if Dataset.objects.filter(team=team, name=name).exists():
        raise DatasetError(f"the team already has a dataset named {name!r}")
    staging = _staging_dir()
    try:
        path = archive.temporary_file_path() if hasattr(archive, "temporary_file_path") else archive
        if not isinstance(path, (str, Path)):
            # Small uploads live in memory: spill them to the staging folder first.
            path = staging / "upload.zip"
            with open(path, "wb") as sink:
                for chunk in archive.chunks():
                    sink.write(chunk)
        root = extract_zip(path, staging / "data", display_name=_display_name(archive))
        return ingest_folder(team, name, root, user, description)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
