"""Loaders keep the batch contract that methods read (engine.methods.base)."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from engine.data import build_training_data, inspect_dataset
from engine.data.loaders import read_image, training_loader

CROP = 24


def build(folder, **changes):
    options = dict(labeled="1/2", seed=0, crop_size=CROP, need_unlabeled=True)
    return build_training_data(folder, **{**options, **changes})


def first_batch(dataset, batch_size: int) -> dict:
    """The first batch as methods see it: the loader's, finished by its dataset."""
    batch = next(iter(training_loader(dataset, batch_size, seed=0, stream=0)))
    return dataset.finish(batch, batch)


def test_labelled_batch(split_dataset):
    batch = first_batch(build(split_dataset).labeled, 2)
    assert set(batch) == {"image", "mask"}
    assert batch["image"].shape == (2, 3, CROP, CROP) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (2, CROP, CROP) and batch["mask"].dtype == torch.long
    assert set(batch["mask"].unique().tolist()) <= {0, 1, 2, 255}


def test_unlabelled_batch(split_dataset):
    batch = first_batch(build(split_dataset).unlabeled, 3)
    assert set(batch) == {"image_weak", "image_strong1", "image_strong2", "cutmix_box1", "cutmix_box2",
                          "padding", "hidden_mask"}
    for key in ("image_weak", "image_strong1", "image_strong2"):
        assert batch[key].shape == (3, 3, CROP, CROP) and batch[key].dtype == torch.float32
    for key in ("cutmix_box1", "cutmix_box2"):
        assert batch[key].shape == (3, CROP, CROP) and set(batch[key].unique().tolist()) <= {0.0, 1.0}
    assert batch["padding"].dtype == torch.bool and batch["hidden_mask"].dtype == torch.long
    assert (batch["hidden_mask"][batch["padding"]] == 255).all()


def test_hidden_masks_are_the_ground_truth_of_left_out_images(split_dataset):
    data = build(split_dataset)
    unlabeled = data.unlabeled
    for i, sample_id in enumerate(unlabeled.ids):
        image, mask = unlabeled.load(i)
        if sample_id in data.budget.hidden_ids:
            assert (mask != 255).all()
        else:
            assert sample_id.startswith("u") and (mask == 255).all()


def test_views_share_one_geometry(split_dataset, monkeypatch):
    # With the photometric part switched off, both strong views equal the weak one pixel for pixel.
    from engine.data import transforms as T

    monkeypatch.setattr(T, "apply_strong_view", lambda image, color, blur: T.normalize(image))
    batch = first_batch(build(split_dataset).unlabeled, 3)
    assert torch.equal(batch["image_weak"], batch["image_strong1"])
    assert torch.equal(batch["image_weak"], batch["image_strong2"])


@pytest.mark.parametrize("strong_blur, expected",
                         [("crop", (0.1 * CROP / 321, 2.0 * CROP / 321)), ("pixels", (0.1, 2.0))])
def test_strong_views_blur_as_the_run_setting_says(split_dataset, monkeypatch, strong_blur, expected):
    from engine.data import transforms as T

    sigmas = []
    monkeypatch.setattr(T, "draw_strong_view", lambda image, sigma, **_: sigmas.append(sigma) or (torch.eye(3, 4), 0.0))
    unlabeled = build(split_dataset, strong_blur=strong_blur).unlabeled
    unlabeled[0]
    assert len(sigmas) == 2 and all(sigma == pytest.approx(expected) for sigma in sigmas)


def test_items_finished_where_the_batch_goes_equal_views_made_in_the_worker(split_dataset):
    """The loader sends uint8 crops and the views' draws; finishing them gives, bit for bit on the
    CPU, what making every view in the worker gave (one random stream, the same operations)."""
    from engine.data import transforms as T

    unlabeled = build(split_dataset).unlabeled
    blurred, padded = 0, set()
    for seed in range(8):
        random.seed(seed)
        image, hidden, padding = unlabeled.geometry(*unlabeled.load(0))
        expected = {"image_weak": T.normalize(image), "image_strong1": T.strong_view(image, sigma=unlabeled.blur_sigma),
                    "image_strong2": T.strong_view(image, sigma=unlabeled.blur_sigma),
                    "cutmix_box1": T.cutmix_box(CROP), "cutmix_box2": T.cutmix_box(CROP), "padding": padding,
                    "hidden_mask": hidden.long()}
        random.seed(seed)
        batch = default_collate([unlabeled[0]])
        blurred += sum(batch[f"{view}_blur"].item() > 0 for view in ("strong1", "strong2"))
        padded.add(bool(padding.any()))
        finished = unlabeled.finish(batch, batch)
        assert finished.keys() == expected.keys()
        for key, value in expected.items():
            assert torch.equal(finished[key][0], value), (seed, key)
    assert blurred and padded == {False, True}  # blurred views, resized and padded crops were compared


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=["contiguous", "nhwc"])
def test_the_trainer_finishes_batches_in_the_network_layout(split_dataset, memory_format):
    from engine import trainer

    data = build(split_dataset)
    for part in (data.labeled, data.unlabeled):
        batch = next(iter(training_loader(part, 2, seed=0, stream=0)))
        reference = part.finish(batch, batch)
        moved = trainer._to_device(batch, torch.device("cpu"), memory_format, part.finish)
        assert moved.keys() == reference.keys()
        for key, value in moved.items():
            assert torch.equal(value, reference[key]), key
            if value.dim() == 4:
                assert value.dtype == torch.float32 and value.is_contiguous(memory_format=memory_format), key


def test_workers_send_uint8_pixels(split_dataset):
    data = build(split_dataset)
    labelled = data.labeled[0]
    unlabelled = data.unlabeled[0]
    assert (labelled["image"].dtype, labelled["mask"].dtype) == (torch.uint8, torch.uint8)
    assert {unlabelled[key].dtype for key in ("image", "cutmix_box1", "cutmix_box2", "hidden_mask")} == {torch.uint8}


def test_validation_split_is_never_loaded_for_training(split_dataset):
    data = build(split_dataset, labeled="all")
    val = set(data.validation.ids)
    assert val and val == set(data.budget.val_ids)
    assert not val & set(data.labeled.ids) and not val & set(data.unlabeled.ids)
    item = data.validation[0]
    assert item["image"].shape == (3, 20, 28) and item["mask"].shape == (20, 28) and item["id"] in val
    assert (item["image"].dtype, item["mask"].dtype) == (torch.uint8, torch.uint8)  # normalised on the device


def test_same_seed_same_batches_whatever_the_global_rng(split_dataset):
    torch.manual_seed(0)
    random.seed(0)
    one = first_batch(build(split_dataset).labeled, 2)
    torch.manual_seed(1)
    random.seed(1)
    two = first_batch(build(split_dataset).labeled, 2)
    assert torch.equal(one["image"], two["image"]) and torch.equal(one["mask"], two["mask"])


def test_precomputed_description_is_used(split_dataset):
    info = inspect_dataset(split_dataset)
    (split_dataset / "dataset.json").unlink()
    data = build(split_dataset, info=info)
    assert data.index.class_names == ["bg", "a", "b"]
    assert not (split_dataset / "dataset.json").exists()  # nothing was inspected again


def test_no_unlabelled_images_left(write_dataset):
    mask = np.ones((8, 8), dtype=np.uint8)
    root = write_dataset({f"m{i}": mask for i in range(5)})
    with pytest.raises(ValueError, match="needs unlabelled images"):
        build(root, labeled="all", crop_size=8)


def test_sixteen_bit_images_are_scaled_into_eight_bits(tmp_path):
    from PIL import Image

    values = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.shape == (3, 2, 2) and image.dtype == torch.uint8
    assert image[0].tolist() == [[0, 64], [128, 255]]


def test_scale_range_reaches_the_training_crops(tmp_path):
    from engine.data import build_training_data
    from engine.data.builtin.demo import generate_demo

    root = generate_demo(tmp_path / "demo", num_images=8, num_unlabeled=0, size=32)
    unscaled = build_training_data(root, labeled="all", seed=0, crop_size=32,
                                   scale_range=(1.0, 1.0))
    shrunk = build_training_data(root, labeled="all", seed=0, crop_size=32,
                                 scale_range=(0.5, 0.5))
    for i in range(len(unscaled.labeled)):
        assert (unscaled.labeled[i]["mask"] != 255).all()  # the whole crop is image
        assert (shrunk.labeled[i]["mask"] == 255).float().mean() > 0.7  # a 16x16 image padded to 32x32


@pytest.mark.parametrize("kind", ["images", "masks"])
def test_a_file_broken_after_inspection_is_named_by_the_run(split_dataset, kind):
    # Given a split_dataset checked at upload whose file is then damaged on disk
    data = build(split_dataset, info=inspect_dataset(split_dataset))
    sample = data.labeled.ids[0]
    path = split_dataset / kind / f"{sample}.png"
    path.write_bytes(path.read_bytes()[:60])
    # When a run loads it, then the error names the file inside the split_dataset, not a server path
    from engine.data import DatasetError

    with pytest.raises(DatasetError) as error:
        data.labeled.load(0)
    [(file, message)] = error.value.errors
    assert file == f"{kind}/{sample}.png"
    assert message.startswith(f"unreadable {kind[:-1]}: ") and str(split_dataset) not in message


def test_read_image_names_the_file_it_cannot_read(tmp_path):
    from engine.data import DatasetError

    (tmp_path / "a.png").write_bytes(b"not a picture")
    with pytest.raises(DatasetError) as error:
        read_image(tmp_path / "a.png", root=tmp_path)
    assert error.value.errors == [("a.png", "unreadable image: not an image file Pillow can read "
                                            "(save it as PNG, JPEG, BMP, TIFF or WebP)")]


def test_a_dataset_error_survives_the_trip_from_a_loader_worker():
    # A DataLoader worker re-raises an exception in the parent as ``type(exc)(text)``.
    from engine.data import DatasetError

    error = DatasetError("images/a.png: unreadable image")
    assert error.errors == [("", "images/a.png: unreadable image")] and str(error) == "images/a.png: unreadable image"


def test_loaders_pin_memory_only_for_a_cuda_device():
    """Pinned batches let the trainer's non_blocking copy overlap the step on a GPU (issue 22);
    on the CPU pinning would only cost a copy."""
    from engine.data.loaders import pins_memory

    assert pins_memory(torch.device("cuda")) and pins_memory(torch.device("cuda", 1))
    assert not pins_memory(torch.device("cpu")) and not pins_memory(torch.device("meta"))


def test_trainer_loaders_pin_memory_for_the_runs_device(monkeypatch, tiny_config):
    from itertools import repeat

    from engine import trainer

    built = []
    monkeypatch.setattr(trainer, "training_loader", lambda *args, **kwargs: built.append(kwargs) or repeat({}))
    run = trainer._build_run(tiny_config(method="unimatch"), None)
    for part in (run.data.labeled, run.data.unlabeled):
        monkeypatch.setattr(part, "finish", lambda batch, host: batch)  # the loaders' batches here are empty

    for device, pinned in ((torch.device("cpu"), False), (torch.device("cuda"), True)):
        run.device = device
        next(trainer._batches(run))
        assert [kwargs["pin_memory"] for kwargs in built[-2:]] == [pinned, pinned]  # labelled and unlabelled


def test_auto_workers_load_in_the_training_process_on_the_cpu_and_share_the_cores_on_cuda(monkeypatch):
    from engine.config import RunConfig
    from engine.data import loaders
    from engine.data.loaders import AUTO_WORKERS, MAX_AUTO_WORKERS, resolve_workers

    assert RunConfig.from_flat({"data": "d"}).data.num_workers == AUTO_WORKERS  # the default
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert resolve_workers(AUTO_WORKERS, cpu) == 0
    assert resolve_workers(3, cpu) == 3 and resolve_workers(0, cuda) == 0  # a number is kept
    monkeypatch.setattr(loaders.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert resolve_workers(AUTO_WORKERS, cuda) == 7  # 15 cores left for two training loaders
    assert resolve_workers(AUTO_WORKERS, cuda, processes=4) == 1  # 3 each, over two loaders
    monkeypatch.setattr(loaders.os, "sched_getaffinity", lambda pid: set(range(128)))
    assert resolve_workers(AUTO_WORKERS, cuda) == MAX_AUTO_WORKERS
    monkeypatch.setattr(loaders.os, "sched_getaffinity", lambda pid: {0})
    assert resolve_workers(AUTO_WORKERS, cuda) == 0


def test_a_worker_count_below_auto_is_refused_naming_the_setting():
    from engine.config import ConfigError, RunConfig

    with pytest.raises(ConfigError, match="num_workers"):
        RunConfig.from_flat({"data": "d", "num_workers": -2})
