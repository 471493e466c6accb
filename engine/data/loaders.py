"""Torch datasets and loaders for one run: labelled, unlabelled (weak + strong views), validation.

Batch contract (read by every method, see ``engine.methods.base``):

* labelled: ``image`` (B, 3, H, W) float normalised, ``mask`` (B, H, W) long, 255 = ignore;
* unlabelled: ``image_weak``, ``image_strong1``, ``image_strong2`` (B, 3, H, W) float, one
  geometry shared by the three; ``cutmix_box1``, ``cutmix_box2`` (B, H, W) float 0/1;
  ``padding`` (B, H, W) bool, True outside the image; ``hidden_mask`` (B, H, W) long, the
  ground truth the budget hid (255 where the image has no mask), for diagnostics only.

The loaders' workers deliver these batches in a smaller form (uint8 pixels and the strong
views' draws); the dataset's ``finish`` makes the contract from it where the batch goes.
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


# Training items travel from the loader workers in uint8 with the draws of their random
# photometric parts, and ``finish`` turns a batch of them into the contract above wherever
# the batch is, after the trainer has copied it to the device (``engine.trainer._to_device``):
# a float view is 4 bytes a pixel per channel and a long mask 8, so a batch of three views
# and a mask left the workers at 1024x1024 as about 12 times the bytes of its uint8 crop, and
# on a GPU host the views' colour maps and blurs were the larger part of a worker's time
# (bench/data.py, docs/benchmarks.md). The draws are made in the workers, in the order they
# always were, so a run's random stream and results do not depend on where the pixels are
# computed; on the CPU the same operations run on the same values.

def finish_labeled(batch: dict, host: dict) -> dict:
    """A collated ``LabeledDataset`` batch, on any device, as the labelled contract (``host``: the
    same batch as the loader gave it, on the CPU)."""
    return {"image": T.normalize(batch["image"]), "mask": batch["mask"].long()}


def finish_unlabeled(batch: dict, host: dict) -> dict:
    """A collated ``UnlabeledDataset`` batch, on any device, as the unlabelled contract; the blur
    sigmas are read from ``host``, the batch as the loader gave it, so the device is not waited for."""
    image = batch["image"]
    finished = {"image_weak": T.normalize(image)}
    crops: torch.Tensor | list[torch.Tensor] = image
    if image.device.type == "cpu":  # each crop in its worker strides: the views' bits do not change
        padded = host["padding"].flatten(1).any(1).tolist()
        crops = [_in_worker_layout(crop, crop_padded) for crop, crop_padded in zip(image, padded, strict=True)]
    for view in ("strong1", "strong2"):
        finished[f"image_{view}"] = T.apply_strong_views(crops, batch[view], host[f"{view}_blur"].tolist())
    return finished | {"cutmix_box1": batch["cutmix_box1"].float(), "cutmix_box2": batch["cutmix_box2"].float(),
                       "padding": batch["padding"], "hidden_mask": batch["hidden_mask"].long()}


def _in_worker_layout(crop: torch.Tensor, padded: bool) -> torch.Tensor:
    """A (3, H, W) crop in the strides ``_Base.geometry`` gave it in the worker: a resized crop
    keeps the channels-last strides of the decoded (H, W, 3) image, a padded one is contiguous
    (``F.pad``). The colour map's matrix product rounds by the layout of its input, so this keeps
    the strong views bit for bit what they were when the workers made them (and a CPU run on
    the last digits of the stored ones, docs/results.md)."""
    return crop.contiguous() if padded else crop.permute(1, 2, 0).contiguous().permute(2, 0, 1)


class LabeledDataset(_Base):
    finish = staticmethod(finish_labeled)

    def __getitem__(self, i: int) -> dict:
        image, mask, _ = self.geometry(*self.load(i))
        return {"image": image, "mask": mask}


class UnlabeledDataset(_Base):
    """Weak view, two strong views of the same crop, the padding mask and the hidden mask.

    The views share one geometry (UniMatch): only the photometric part differs, so a
    pseudo-label from the weak view supervises the strong views pixel for pixel.
    """

    finish = staticmethod(finish_unlabeled)

    def __init__(self, *args, strong_blur: str = "crop", **kwargs):
        super().__init__(*args, **kwargs)
        self.blur_sigma = T.blur_sigma(strong_blur, self.crop_size)

    def __getitem__(self, i: int) -> dict:
        image, hidden, padding = self.geometry(*self.load(i))
        (color1, blur1), (color2, blur2) = (T.draw_strong_view(image, sigma=self.blur_sigma) for _ in range(2))
        return {
            "image": image,
            "strong1": color1, "strong1_blur": torch.tensor(blur1, dtype=torch.float64),
            "strong2": color2, "strong2_blur": torch.tensor(blur2, dtype=torch.float64),
            "cutmix_box1": T.cutmix_box(self.crop_size).to(torch.uint8),
            "cutmix_box2": T.cutmix_box(self.crop_size).to(torch.uint8),
            "padding": padding,
            "hidden_mask": hidden,
        }


class ValidationDataset(_Base):
    """Whole images, no augmentation (batch size 1: sizes may differ): the uint8 image (3, H, W),
    the uint8 mask (H, W) and the id. The evaluation normalises the image on its device
    (``engine.evaluation.evaluate``), so a 2048x1024 image crosses as 8 MB instead of 42 (float
    image and long mask)."""

    def __getitem__(self, i: int) -> dict:
        image, mask = self.load(i)
        return {"image": image, "mask": mask, "id": self.ids[i]}


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
