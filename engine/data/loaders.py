"""Torch datasets and loaders for one run: labelled, unlabelled (weak + strong views), validation.

Batch contract (read by every method, see ``engine.methods.base``):

* labelled: ``image`` (B, 3, H, W) float normalised, ``mask`` (B, H, W) long, 255 = ignore;
* unlabelled: ``image_weak``, ``image_strong1``, ``image_strong2`` (B, 3, H, W) float, one
  geometry shared by the three; ``cutmix_box1``, ``cutmix_box2`` (B, H, W) float 0/1;
  ``padding`` (B, H, W) bool, True outside the image; ``hidden_mask`` (B, H, W) long, the
  ground truth the budget hid (255 where the image has no mask), for diagnostics only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from engine.data import transforms as T
from engine.data.budget import LabelBudget, split_label_budget
from engine.data.decode_cache import DecodeCache
from engine.data.description import DatasetInfo
from engine.data.errors import DatasetError, read_problem
from engine.data.index import DatasetIndex
from engine.data.inspect import load_index
from engine.data.masks import IGNORE_INDEX, MaskError, read_mask
from engine.sampling import ResumableBatchSampler, SeededItems, SizedDataset

#: 16-bit and float images (microscopy) are scaled by their own maximum into 0-255.
WIDE_MODES = ("I;16", "I;16L", "I;16B", "I", "F")


def read_image(path: str | Path, root: str | Path | None = None) -> torch.Tensor:
    """uint8 (3, H, W) in channels-last memory (a view of the HWC array, which the fast resize wants).

    A file that cannot be decoded raises DatasetError naming it (relative to ``root``, the
    dataset folder, when given), so a failed run says which file broke it.
    """
    return torch.from_numpy(decode_image(path, root)).permute(2, 0, 1)


def decode_image(path: str | Path, root: str | Path | None = None) -> np.ndarray:
    """uint8 (H, W, 3) RGB pixels of an image file (``read_image``'s array)."""
    try:
        with Image.open(path) as image:
            if image.mode in WIDE_MODES:
                values = np.asarray(image, dtype=np.float32)
                peak = float(values.max()) or 1.0
                rgb = np.repeat((values * (255 / peak)).round().astype(np.uint8)[..., None], 3, axis=2)
            else:
                rgb = np.array(image.convert("RGB"))  # writable: torch refuses to wrap read-only memory
    except Exception as error:  # a Pillow plugin raises many kinds on a malformed file
        raise DatasetError([(_file_name(path, root), f"unreadable image: {read_problem(error, root)}")]) from error
    return rgb


def _file_name(path: str | Path, root: str | Path | None) -> str:
    """``path`` relative to the dataset folder where it lies inside it."""
    path = Path(path)
    if root is not None and path.is_relative_to(root):
        return path.relative_to(root).as_posix()
    return str(path)


#: UniMatch's random rescaling range (``dataset/transform.py``: ``resize(img, mask, (0.5, 2.0))``).
SCALE_RANGE = (0.5, 2.0)


class _Base(Dataset):
    def __init__(self, index: DatasetIndex, ids: list[str], crop_size: int,
                 scale_range: tuple[float, float] = SCALE_RANGE):
        self.index, self.ids, self.crop_size, self.scale_range = index, ids, crop_size, scale_range
        self.labels = index.label_table()
        self.cache = DecodeCache.from_environment()  # read here, in the run's process; workers get a copy
        # What a mask's class indices depend on besides its file (part of its cache key).
        self.mask_variant = repr((index.mask_colors, index.ignore_color, index.ignore_index))

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.index.by_id[self.ids[i]]
        pixels = self.cache.load(sample.image, lambda: decode_image(sample.image, self.index.root), "image")
        image = torch.from_numpy(pixels).permute(2, 0, 1)
        if sample.mask is None:
            return image, torch.full(image.shape[-2:], IGNORE_INDEX, dtype=torch.uint8)
        mask_path = sample.mask
        try:
            values = self.cache.load(mask_path, lambda: read_mask(mask_path, self.index.mask_colors,
                                                                  self.index.ignore_color, self.index.ignore_index),
                                     self.mask_variant)
        except MaskError as error:
            raise DatasetError([(_file_name(sample.mask, self.index.root), str(error))]) from error
        except Exception as error:
            raise DatasetError([(_file_name(sample.mask, self.index.root),
                                 f"unreadable mask: {read_problem(error, self.index.root)}")]) from error
        return image, torch.from_numpy(self.labels[values])

    def geometry(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """UniMatch's order: scale, crop (ignore padding), flip; returns image, mask, padding."""
        image, mask, padding = T.random_scale_crop(image, mask, self.crop_size, *self.scale_range)
        image, mask, padding = T.random_hflip(image, mask, padding)
        return image, mask, padding


class LabeledDataset(_Base):
    def __getitem__(self, i: int) -> dict:
        image, mask, _ = self.geometry(*self.load(i))
        return {"image": T.normalize(image), "mask": mask.long()}


class UnlabeledDataset(_Base):
    """Weak view, two strong views of the same crop, the padding mask and the hidden mask.

    The views share one geometry (UniMatch): only the photometric part differs, so a
    pseudo-label from the weak view supervises the strong views pixel for pixel.
    """

    def __init__(self, *args, strong_blur: str = "crop", **kwargs):
        super().__init__(*args, **kwargs)
        self.blur_sigma = T.blur_sigma(strong_blur, self.crop_size)

    def __getitem__(self, i: int) -> dict:
        image, hidden, padding = self.geometry(*self.load(i))
        return {
            "image_weak": T.normalize(image),
            "image_strong1": T.strong_view(image, sigma=self.blur_sigma),
            "image_strong2": T.strong_view(image, sigma=self.blur_sigma),
            "cutmix_box1": T.cutmix_box(self.crop_size),
            "cutmix_box2": T.cutmix_box(self.crop_size),
            "padding": padding,
            "hidden_mask": hidden.long(),
        }


class ValidationDataset(_Base):
    """Whole images, no augmentation (batch size 1: sizes may differ)."""

    def __getitem__(self, i: int) -> dict:
        image, mask = self.load(i)
        return {"image": T.normalize(image), "mask": mask.long(), "id": self.ids[i]}


#: Seconds a loader waits for one batch from its workers before failing loudly.
WORKER_TIMEOUT_SECONDS = 600


def worker_options(num_workers: int) -> dict:
    """DataLoader settings for ``num_workers`` worker processes.

    Workers start through a fork server rather than a plain fork: the trainer runs inside
    processes that already have threads (a Celery worker's heartbeat, a test's browser
    driver), and forking those can leave a worker deadlocked on a lock some other thread
    held - the loader would then wait forever. A timeout turns any remaining hang into an
    error the user sees.
    """
    if num_workers == 0:
        return {"num_workers": 0}
    return {"num_workers": num_workers, "multiprocessing_context": "forkserver", "timeout": WORKER_TIMEOUT_SECONDS}


#: ``num_workers`` meaning "as many as the host has cores for" (the run setting's default).
AUTO_WORKERS = -1
#: Loader processes per training loader under ``AUTO_WORKERS``: beyond this a loader rarely gains.
MAX_AUTO_WORKERS = 8
#: Loaders that read in parallel while a run trains: the labelled and the unlabelled one.
TRAINING_LOADERS = 2


def resolve_workers(num_workers: int, device: torch.device, processes: int = 1) -> int:
    """``num_workers`` as given, or for ``AUTO_WORKERS``: none on the CPU, whose cores already run
    the training threads; on CUDA, where the GPU waits on decoding and augmentation (issue 22,
    bench/data.py), the host's cores shared among the run's processes and their two training
    loaders, one core left to each training process, at most ``MAX_AUTO_WORKERS`` per loader."""
    if num_workers != AUTO_WORKERS:
        return num_workers
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_process = cores // max(1, processes) - 1
    return max(0, min(MAX_AUTO_WORKERS, per_process // TRAINING_LOADERS))


def pins_memory(device: torch.device) -> bool:
    """Whether loaders feeding ``device`` put their batches in page-locked memory: only for CUDA,
    where it lets the trainer's ``non_blocking`` copy overlap the step before it instead of
    staging the batch synchronously (PyTorch's DataLoader notes, "Memory Pinning"). On the CPU
    pinning would only cost a copy."""
    return device.type == "cuda"


@dataclass
class TrainingData:
    index: DatasetIndex
    budget: LabelBudget
    labeled: LabeledDataset
    unlabeled: UnlabeledDataset | None
    validation: ValidationDataset

    @property
    def num_classes(self) -> int:
        return self.index.num_classes


def training_loader(dataset: SizedDataset, batch_size: int, *, seed: int, stream: int, start_step: int = 0,
                    num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """Endless training batches from step ``start_step`` on, reproducible for any ``num_workers``.

    The order and each item's augmentation randomness are functions of (seed, stream, step)
    (``engine.sampling``), which is what lets a resumed run see the batches an
    uninterrupted one would have seen.
    """
    sampler = ResumableBatchSampler(len(dataset), batch_size, seed, stream, start_step=start_step)
    return DataLoader(
        SeededItems(dataset, seed, stream), batch_sampler=sampler, **worker_options(num_workers), pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed),  # the loader's own seed draw leaves the global RNG alone
    )


def build_training_data(path: str | Path, *, labeled: str | int, seed: int, crop_size: int,
                        need_unlabeled: bool = False, val_fraction: float = 0.2, info: DatasetInfo | None = None,
                        scale_range: tuple[float, float] = SCALE_RANGE, strong_blur: str = "crop") -> TrainingData:
    """The datasets of one run; ``info`` (the description stored at upload) spares a re-inspection."""
    index = load_index(path, info)
    budget = split_label_budget(index, labeled, seed, val_fraction)
    unlabeled = None
    if need_unlabeled:
        if not budget.unlabeled_ids:
            raise ValueError("this method needs unlabelled images, but the label budget leaves none: "
                             "choose a smaller budget or add images without masks")
        unlabeled = UnlabeledDataset(index, budget.unlabeled_ids, crop_size, scale_range, strong_blur=strong_blur)
    return TrainingData(index, budget, LabeledDataset(index, budget.labeled_ids, crop_size, scale_range), unlabeled,
                        ValidationDataset(index, budget.val_ids, crop_size))
