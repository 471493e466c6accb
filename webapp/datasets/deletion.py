"""Deleting a dataset: the row first, then its files, all or nothing.

The row goes inside a transaction; its folder and preview sheet are removed only once
that transaction has committed, so a refused or failed deletion leaves both, and a
deleted dataset leaves neither (the mirror image of ``ingest``).
"""
from __future__ import annotations

from django.db import transaction
from django.db.models import ProtectedError

from webapp.datasets.ingest import remove_dataset_files
from webapp.datasets.models import Dataset


class DatasetInUse(ValueError):
    """Experiments still read this dataset; they keep it alive."""


def delete_dataset(dataset: Dataset) -> None:
    folder = dataset.path
    with transaction.atomic():
        try:
            dataset.delete()
        except ProtectedError as error:
            kinds: dict[str, int] = {}
            for obj in error.protected_objects:
                kinds[obj._meta.verbose_name] = kinds.get(obj._meta.verbose_name, 0) + 1
            users = " and ".join(f"{n} {name}{'s' if n != 1 else ''}" for name, n in sorted(kinds.items()))
            raise DatasetInUse(f"dataset {dataset.name!r} is used by {users}; delete those first") from None
        transaction.on_commit(lambda: remove_dataset_files(folder))
