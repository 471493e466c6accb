"""``DatasetInfo``: the description of a valid dataset that ``inspect_dataset`` returns.

It is stored on the dataset's row at upload and in the folder's ``dataset.json``
(``engine.data.index``), and it is what ``load_index`` resolves classes from.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class DatasetInfo:
    num_images: int
    num_labeled: int
    num_unlabeled: int
    classes: list[dict[str, Any]]  # index, name, color, pixel_share, num_images (masks containing it)
    ignore_index: int
    image_sizes: dict[str, int]  # min/max width/height
    num_train: int | None = None  # from the layout's split files, when given
    num_val: int | None = None
    binary_255: bool = False
    layout: str = "images-masks"
    num_bytes: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DatasetInfo:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})
