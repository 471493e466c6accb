"""Torch datasets and loaders for one run: labelled, unlabelled (weak + strong views), validation."""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from engine.data import transforms as T
from engine.data.budget import LabelBudget, split_label_budget
from engine.data.index import DatasetIndex, load_index


def read_image(path) -> torch.Tensor:
    with Image.open(path) as image:
        return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()


def read_mask(path, index: DatasetIndex, shape: tuple[int, int]) -> torch.Tensor:
    if path is None:
        return torch.full(shape, T.IGNORE_INDEX, dtype=torch.uint8)
    with Image.open(path) as mask:
        values = np.array(mask)
    if index.binary_255:
        values = np.where(values == 255, 1, values)
    values = values.astype(np.int64)
    if index.ignore_index != T.IGNORE_INDEX:
        values = np.where(values == index.ignore_index, T.IGNORE_INDEX, values)
    return torch.from_numpy(values.astype(np.uint8))


class _Base(Dataset):
    def __init__(self, index: DatasetIndex, ids: list[str], crop_size: int, seed: int):
        self.index, self.ids, self.crop_size, self.seed = index, ids, crop_size, seed

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.index.by_id[self.ids[i]]
        image = read_image(sample.image)
        return image, read_mask(sample.mask, self.index, tuple(image.shape[-2:]))

    def geometry(self, image, mask):
        image, mask = T.random_scale(image, mask)
        image, mask = T.random_crop(image, mask, self.crop_size)
        return T.random_hflip(image, mask)


class LabeledDataset(_Base):
    def __getitem__(self, i: int) -> dict:
        image, mask = self.geometry(*self.load(i))
        return {"image": T.normalize(image), "mask": mask.long()}


class UnlabeledDataset(_Base):
    """Weak view, two strong views of the same crop, the padding mask and the hidden mask.

    The views share one geometry (UniMatch): only the photometric part differs.
    ``padding`` marks crop pixels outside the image; ``hidden_mask`` is the ground truth
    the budget hid (255 where the image has none), used only to score pseudo-labels.
    """

    def __getitem__(self, i: int) -> dict:
        image, hidden = self.load(i)
        image, hidden = T.random_scale(image, hidden)
        # Padding fills masks with the ignore value, so `inside` stays 1 only on the image.
        _, inside = T.pad_to(image, torch.ones_like(hidden), self.crop_size)
        image, hidden = T.pad_to(image, hidden, self.crop_size)
        height, width = image.shape[-2:]
        top, left = random.randint(0, height - self.crop_size), random.randint(0, width - self.crop_size)
        rows, cols = slice(top, top + self.crop_size), slice(left, left + self.crop_size)
        image, hidden, inside = image[:, rows, cols], hidden[rows, cols], inside[rows, cols]
        if random.random() < 0.5:
            image, hidden, inside = image.flip(-1), hidden.flip(-1), inside.flip(-1)
        return self._views(image, (hidden, inside != 1))

    def _views(self, image, masks) -> dict:
        hidden, padding = masks
        return {
            "image_weak": T.normalize(image),
            "image_strong1": T.normalize(T.strong_photometric(image)),
            "image_strong2": T.normalize(T.strong_photometric(image)),
            "cutmix_box1": T.cutmix_box(self.crop_size),
            "cutmix_box2": T.cutmix_box(self.crop_size),
            "padding": padding.bool(),
            "hidden_mask": hidden.long(),
        }


class ValidationDataset(_Base):
    """Whole images, no augmentation (batch size 1: sizes may differ)."""

    def __getitem__(self, i: int) -> dict:
        image, mask = self.load(i)
        return {"image": T.normalize(image), "mask": mask.long(), "id": self.ids[i]}


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


@dataclass
class TrainingData:
    index: DatasetIndex
    budget: LabelBudget
    labeled: DataLoader
    unlabeled: DataLoader | None
    validation: ValidationDataset

    @property
    def num_classes(self) -> int:
        return self.index.num_classes


def _loader(dataset: Dataset, batch_size: int, num_workers: int, generator: torch.Generator) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=len(dataset) >= batch_size,
        num_workers=num_workers,
        worker_init_fn=_seed_worker,
        generator=generator,
        persistent_workers=num_workers > 0,
    )


def build_training_data(path: str, *, labeled: str | int, seed: int, crop_size: int, batch_size: int,
                        unlabeled_batch_size: int, num_workers: int = 0, need_unlabeled: bool = False,
                        val_fraction: float = 0.2) -> TrainingData:
    index = load_index(path)
    budget = split_label_budget(index, labeled, seed, val_fraction)
    generator = torch.Generator().manual_seed(seed)
    labeled_loader = _loader(LabeledDataset(index, budget.labeled_ids, crop_size, seed), batch_size, num_workers, generator)
    unlabeled_loader = None
    if need_unlabeled:
        if not budget.unlabeled_ids:
            raise ValueError("this method needs unlabelled images, but the label budget leaves none: "
                             "choose a smaller budget or add images without masks")
        unlabeled_loader = _loader(UnlabeledDataset(index, budget.unlabeled_ids, crop_size, seed),
                                   unlabeled_batch_size, num_workers, generator)
    return TrainingData(index, budget, labeled_loader, unlabeled_loader, ValidationDataset(index, budget.val_ids, crop_size, seed))
