"""Random zips through the upload path (``ingest_zip``, which the web form and the API call).

Each zip starts as a small valid dataset and is left alone or mutated: files replaced by
broken, truncated or forged images, entries with odd names (unicode, HTML, very long,
nested, absolute, ``..``), masks that do not fit their image, random classes.json.
Whatever comes in, the upload is either a dataset whose every file decodes, or a refusal
whose messages name files of the zip and no server path, and which leaves nothing on disk.
"""
from __future__ import annotations

import itertools
import json
import os
import struct
import warnings
import zipfile
from collections import Counter
from io import BytesIO
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from engine.data import DatasetError, load_index
from engine.data.loaders import read_image
from engine.data.masks import read_mask
from tests.webapp.test_dataset_upload import png, png_declaring, with_broken_pixel_data
from webapp.datasets.ingest import ingest_zip, remove_dataset_files
from webapp.datasets.models import Dataset

#: The user's own name for the zip: what messages may call it.
ZIP_NAME = "fuzzed data.zip"
#: What a message shows only if it leaks where the server keeps an upload.
SERVER_MARKS = ("/tmp", ".staging-", ".partial-", "upload.zip")


def harmless(text: str) -> bool:
    """Generated text never contains a server mark itself, so finding one in a message means a leak."""
    return not any(mark in text for mark in ("tmp", "staging", "partial", "upload"))


TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12).filter(harmless)
#: Class names a user would type: letters, digits, punctuation, symbols (HTML included), spaces.
CLASS_NAME = st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=20).filter(
    lambda name: harmless(name) and name.strip())
SEGMENT = st.one_of(
    st.text(st.characters(exclude_characters="/\x00", exclude_categories=("Cs",)), min_size=1, max_size=16),
    st.sampled_from(["images", "masks", "classes.json", "..", ".", "", "__MACOSX", "C:", "<b>x</b>.png", "a\\b.png",
                     "x" * 256, "é" * 130, "日本語.png", " .png", ".hidden.png", "s0.PNG", "s0.jpg", "notes.txt"]),
).filter(harmless)
NAME = st.builds(lambda lead, folder, parts: lead + folder + "/".join(parts),
                 st.sampled_from(["", "", "", "/"]), st.sampled_from(["images/", "masks/", "", "images/deep/"]),
                 st.lists(SEGMENT, min_size=1, max_size=3)).filter(bool)  # zipfile cannot store an empty name
COLOUR = st.one_of(st.sampled_from(["#ff0000", "#00FF00", "0000ff", "blue", "#12345", "", None]),
                   st.lists(st.integers(-5, 300), min_size=2, max_size=4), st.floats(allow_nan=True))
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)
CLASS_ENTRY = st.one_of(
    TEXT,
    st.fixed_dictionaries({"name": st.one_of(TEXT, JSON, st.text(min_size=95, max_size=110).filter(harmless))},
                          optional={"color": COLOUR}),
    JSON,
)
CLASSES_JSON = st.one_of(
    st.fixed_dictionaries({"classes": st.lists(CLASS_ENTRY, max_size=6)},
                          optional={"ignore_index": st.one_of(st.integers(-2, 70000), JSON), "ignore_color": COLOUR}),
    st.lists(CLASS_ENTRY, max_size=6),
    JSON,
).map(lambda payload: json.dumps(payload).encode()) | st.binary(max_size=40)
#: How a file's content may be replaced: kept real but broken, forged, or random.
CONTENT = st.one_of(
    st.sampled_from(["broken pixel data", "truncated", "bomb", "over our limit", "jpeg", "rgb", "sixteen bit",
                     "other size", "high labels"]),
    st.binary(max_size=64),
    st.binary(max_size=32).map(lambda tail: b"\x89PNG\r\n\x1a\n" + tail),
)
MUTATION = st.one_of(
    st.tuples(st.just("replace"), st.integers(0, 50), CONTENT),
    st.tuples(st.just("add"), NAME, CONTENT),
    st.tuples(st.just("rename"), st.integers(0, 50), NAME),
    st.tuples(st.just("drop"), st.integers(0, 50)),
    st.tuples(st.just("classes"), CLASSES_JSON),
    st.tuples(st.just("wrap"), SEGMENT),
)


def content(kind: str | bytes, original: bytes, rng: np.random.Generator, size: tuple[int, int]) -> bytes:
    if isinstance(kind, bytes):
        return kind
    width, height = size
    picture = rng.integers(0, 256, (height, width, 3))
    if kind == "broken pixel data":
        try:
            return with_broken_pixel_data(original)
        except (struct.error, IndexError):  # not a PNG (any more): break a fresh one
            return with_broken_pixel_data(png(picture))
    if kind == "truncated":
        return original[: len(original) // 2]
    if kind == "bomb":
        return png_declaring(20000, 20000)
    if kind == "over our limit":
        return png_declaring(9000, 9000)
    if kind == "jpeg":
        buffer = BytesIO()
        Image.fromarray(picture.astype(np.uint8)).save(buffer, format="JPEG")
        return buffer.getvalue()
    if kind == "rgb":
        return png(picture)
    if kind == "sixteen bit":
        buffer = BytesIO()
        Image.fromarray(rng.integers(0, 3, (height, width)).astype(np.uint16)).save(buffer, format="PNG")
        return buffer.getvalue()
    if kind == "other size":
        return png(rng.integers(0, 2, (height + 1, width)))
    return png(rng.integers(200, 255, (height, width)))  # "high labels"


@st.composite
def zips(draw) -> tuple[list[tuple[str, bytes]], int]:
    """(entries, compression) of a zip: a valid dataset, perhaps mutated."""
    width, height = draw(st.integers(4, 20)), draw(st.integers(4, 20))
    num_classes, labelled, unlabelled = draw(st.integers(2, 4)), draw(st.integers(1, 3)), draw(st.integers(0, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    entries = []
    for i in range(labelled + unlabelled):
        entries.append((f"images/s{i}.png", png(rng.integers(0, 256, (height, width, 3)))))
        if i < labelled:
            entries.append((f"masks/s{i}.png", png(rng.integers(0, num_classes, (height, width)))))
    if draw(st.booleans()):
        names = draw(st.lists(CLASS_NAME, min_size=num_classes, max_size=num_classes, unique=True))
        colours = draw(st.lists(st.sampled_from(["#000000", [255, 0, 0], "#00ff00", [0, 0, 255], "#ABCDEF"]),
                                min_size=num_classes, max_size=num_classes, unique_by=str))
        classes = [{"name": name, "color": colour} for name, colour in zip(names, colours, strict=True)]
        entries.append(("classes.json", json.dumps({"classes": classes, "ignore_index": 255}).encode()))
    for mutation in draw(st.one_of(st.just([]), st.lists(MUTATION, min_size=1, max_size=3))):
        kind, *arguments = mutation
        target = arguments[0] % len(entries) if entries and isinstance(arguments[0], int) else None
        if kind == "replace" and target is not None:
            name, data = entries[target]
            entries[target] = (name, content(arguments[1], data, rng, (width, height)))
        elif kind == "add":
            entries.append((arguments[0], content(arguments[1], b"", rng, (width, height))))
        elif kind == "rename" and target is not None:
            entries[target] = (arguments[1], entries[target][1])
        elif kind == "drop" and target is not None:
            del entries[target]
        elif kind == "classes":
            entries = [entry for entry in entries if entry[0] != "classes.json"] + [("classes.json", arguments[0])]
        elif kind == "wrap":
            entries = [(f"{arguments[0]}/{name}", data) for name, data in entries]
    return entries, draw(st.sampled_from([zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED]))


def write_zip(entries: list[tuple[str, bytes]], compression: int) -> bytes:
    buffer = BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", compression) as archive:
        warnings.simplefilter("ignore")  # a repeated name is one of the things tried
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def names_in(data: bytes) -> set[str]:
    """Every name the zip holds, as stored and as written to disk, and the folders above them."""
    with zipfile.ZipFile(BytesIO(data)) as archive:
        stored = archive.namelist()
    names = set(stored) | {"/".join(PurePosixPath(name).parts) for name in stored}
    return names | {str(parent) for name in list(names) for parent in PurePosixPath(name).parents if str(parent) != "."}


def names_a_file_of_the_zip(file: str, names: set[str]) -> bool:
    """``file`` is "", the zip itself, classes.json, or a path inside the zip (relative to a wrapping folder too)."""
    if file in ("", ZIP_NAME, "classes.json"):
        return True
    forms = {file, file.rstrip("/")}
    return any(name == form or name.endswith("/" + form) for name in names for form in forms)


def datasets_folder() -> set[str]:
    folder = Path(django_settings.MEDIA_ROOT) / "datasets"
    return set(os.listdir(folder)) if folder.exists() else set()


def deliver(data: bytes, how: str, folder: Path):
    """The zip as ingest_zip receives it: a path, an in-memory upload, or an upload Django spilled to disk."""
    if how == "path":
        path = folder / ZIP_NAME
        path.write_bytes(data)
        return path
    if how == "memory":
        return SimpleUploadedFile(ZIP_NAME, data, content_type="application/zip")
    upload = TemporaryUploadedFile(ZIP_NAME, "application/zip", len(data), None)
    upload.write(data)
    upload.seek(0)
    return upload


@pytest.mark.django_db
def test_any_zip_is_a_dataset_or_a_refusal_that_names_its_files(team_users, tmp_path):
    team, alice = team_users["team"], team_users["alice"]
    numbers = itertools.count()
    outcomes = Counter()

    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(zips(), st.sampled_from(["path", "memory", "temporary"]))
    def upload_is_all_or_nothing(zip_entries, how):
        data = write_zip(*zip_entries)
        names = names_in(data)
        before = datasets_folder()
        archive = deliver(data, how, tmp_path)
        name = f"fuzz {next(numbers)}"
        try:
            dataset = ingest_zip(team, name, archive, alice)
        except DatasetError as error:
            outcomes["refused"] += 1
            assert error.errors
            for file, message in error.errors:
                assert names_a_file_of_the_zip(file, names), (file, message, sorted(names))
                assert not any(mark in message for mark in SERVER_MARKS), (file, message)
                assert str(django_settings.MEDIA_ROOT) not in message, (file, message)
            assert not Dataset.objects.filter(name=name).exists()
            assert datasets_folder() == before  # no dataset folder, no .staging-*, no .partial-*
        else:
            outcomes["accepted"] += 1
            assert Dataset.objects.filter(pk=dataset.pk).exists() and dataset.path.is_dir()
            assert datasets_folder() - before == {dataset.path.name, f"{dataset.path.name}.preview.png",
                                                  f"{dataset.path.name}.samples"}
            index = load_index(dataset.path)
            for sample in index.samples:  # what a run reads decodes
                read_image(sample.image, index.root)
                if sample.mask is not None:
                    read_mask(sample.mask, index.mask_colors, index.ignore_color, index.ignore_index)
            remove_dataset_files(dataset.path)
            dataset.delete()
        finally:
            if how == "temporary":
                archive.close()

    upload_is_all_or_nothing()
    assert outcomes["accepted"] >= 5 and outcomes["refused"] >= 5, outcomes
