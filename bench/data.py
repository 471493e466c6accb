"""Data pipeline throughput: images/s of the training loaders on the CPU.

Writes a set of 1024x512 scenes (Cityscapes' aspect at half resolution) in the upload
layout, then times the labelled pipeline (scale, crop, flip, normalise) and the
unlabelled one (the same geometry plus two strong views and CutMix boxes, as UniMatch
feeds its student) through a DataLoader with 0, 2 and 4 workers, 512x512 crops.
Also reports the per-sample cost in one process (decoding vs augmenting), the number to
watch when changing a transform. Prints tables and writes JSON (bench/out/data.json unless --json says otherwise).

    PYTHONPATH=. python bench/data.py [--images 32] [--batches 12] [--json PATH]
    PYTHONPATH=. python bench/data.py --versus ddrnet23_slim [--device cuda] [--workers 0 2 4]

``--versus ARCH`` asks instead whether the loaders keep up with a training step (issue 22):
it writes Cityscapes-sized 2048x1024 scenes, times the trainer's own supervised step
(``engine.trainer._train_one_step``, the trainer's AMP default on the device) of ARCH at
DDRNet's Cityscapes training crop, 1024x1024, with 6 images per GPU (Hong et al.,
arXiv:2101.06085, train on 1024x1024 crops with 12 images per batch; mmsegmentation's
reproduction ``ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024.py`` puts 6 on each of
2 GPUs, the official repository ships no training config), and the batches per second the
labelled loader, the unlabelled loader and both together (one labelled and one unlabelled
batch per step, as a semi-supervised run reads them) deliver at that crop and batch, with
decoding and augmentation in ``--workers`` loader processes and pinned memory on CUDA
(``engine.data.loaders.pins_memory``). The ratio delivered / consumed must be above 1 for
the GPU never to wait for data.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import default_collate

from engine import trainer
from engine.config import RunConfig
from engine.data import load_index
from engine.data.budget import split_label_budget
from engine.data.builtin.demo import CLASSES, render_scene
from engine.data.decode_cache import DecodeCache
from engine.data.loaders import LabeledDataset, UnlabeledDataset, pins_memory, training_loader
from engine.models import resolve_memory_format

WIDTH, HEIGHT, CROP, BATCH = 1024, 512, 512, 8
#: ``--versus``: Cityscapes' 2048x1024 images, DDRNet's 1024x1024 training crop, 6 images per GPU.
STEP_HEIGHT, STEP_CROP, STEP_BATCH = 1024, 1024, 6
#: Batches each DataLoader worker prepares ahead (torch's default ``prefetch_factor``).
PREFETCH = 2


def write_scenes(root: Path, count: int, height: int = HEIGHT) -> None:
    """``count`` (height x 2 height) scenes: two square demo scenes side by side."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        halves = [render_scene(rng, height) for _ in range(2)]
        image = np.concatenate([h[0] for h in halves], axis=1)
        mask = np.concatenate([h[1] for h in halves], axis=1)
        Image.fromarray(image).save(root / "images" / f"scene_{i:03d}.png")
        Image.fromarray(mask).save(root / "masks" / f"scene_{i:03d}.png")
    classes = [{"name": name, "color": color} for name, color in CLASSES]
    (root / "classes.json").write_text(json.dumps({"classes": classes}))


def images_per_second(dataset, workers: int, batches: int) -> float:
    loader = training_loader(dataset, BATCH, seed=0, stream=0, num_workers=workers)
    iterator = iter(loader)
    for _ in range(PREFETCH * workers + 1):  # worker start-up and the batches made ahead are not throughput
        next(iterator)
    start = time.perf_counter()
    seen = 0
    for _ in range(batches):
        batch = next(iterator)  # the sampler never ends
        seen += len(next(iter(batch.values())))
    elapsed = time.perf_counter() - start
    del iterator, loader
    return seen / elapsed


def batches_per_second(datasets: list[LabeledDataset | UnlabeledDataset], batch_size: int, workers: int, batches: int,
                       device: torch.device, memory_format: torch.memory_format = torch.contiguous_format) -> float:
    """Steps' worth of batches per second from one loader per dataset, read in turn as the trainer
    reads them (``workers`` processes each), copied to ``device`` in the network's ``memory_format``
    and finished there (the views' colour and blur), as the trainer does."""
    loaders = [iter(training_loader(dataset, batch_size, seed=0, stream=stream, num_workers=workers,
                                    pin_memory=pins_memory(device)))
               for stream, dataset in enumerate(datasets)]
    # Worker start-up and the batches the workers made ahead (PREFETCH per worker) are not throughput:
    # timed from there, only batches made while the clock runs are counted.
    for _ in range(PREFETCH * workers + 1):
        for loader in loaders:
            next(loader)
    batches = max(batches, 2 * workers)
    start = time.perf_counter()
    for _ in range(batches):
        for loader, dataset in zip(loaders, datasets, strict=True):
            trainer._to_device(next(loader), device, memory_format, dataset.finish)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    del loaders
    return batches / elapsed


def step_seconds(root: Path, arch: str, crop: int, batch_size: int, device: str, steps: int) -> float:
    """Median seconds of the trainer's own supervised step of ``arch`` on one batch held on the device."""
    config = RunConfig.from_flat({"data": str(root), "arch": arch, "method": "supervised", "labeled": "all",
                                  "crop_size": crop, "batch_size": batch_size, "iters": steps + 1, "device": device})
    run = trainer._build_run(config, None)
    run.method.train()
    labeled, _ = next(trainer._batches(run))
    times = []
    for _ in range(steps + 1):  # the first step (allocations, cuDNN autotuning) is not timed
        start = time.perf_counter()
        losses = trainer._train_one_step(run, labeled, None)
        losses["loss"].item()  # the device has finished the step
        times.append(time.perf_counter() - start)
        run.step += 1
    return statistics.median(times[1:])


def keep_up(args: argparse.Namespace) -> None:
    """Loader delivery against the step's consumption, at the step's crop and batch."""
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "scenes"
        write_scenes(root, args.images, STEP_HEIGHT)
        step = step_seconds(root, args.versus, STEP_CROP, STEP_BATCH, args.device, args.steps)
        print(f"{args.versus} supervised step, batch {STEP_BATCH}, {STEP_CROP}x{STEP_CROP}: {1000 * step:.0f} ms",
              flush=True)
        index = load_index(root)
        ids = sorted(index.by_id)
        labeled, unlabeled = LabeledDataset(index, ids, STEP_CROP), UnlabeledDataset(index, ids, STEP_CROP)
        use_decode_cache(args.decode_cache, Path(tmp), [labeled, unlabeled])
        pipelines: dict[str, list[LabeledDataset | UnlabeledDataset]] = {
            "labelled": [labeled], "unlabelled": [unlabeled], "labelled + unlabelled": [labeled, unlabeled]}
        costs = []
        for name, dataset in (("labelled", labeled), ("unlabelled", unlabeled)):
            decode, item, finish = per_sample_ms(dataset, STEP_BATCH)
            costs.append({"pipeline": name, "decode_ms": round(decode, 1), "augment_ms": round(item - decode, 1),
                          "finish_ms_cpu": round(finish, 1)})
            print(f"{name:<22} decode {decode:6.1f} ms + augment {item - decode:6.1f} ms per sample in a worker, "
                  f"then {finish:6.1f} ms to finish it on the CPU", flush=True)
        rows = []
        for name, datasets in pipelines.items():
            for workers in args.workers:
                rate = batches_per_second(datasets, STEP_BATCH, workers, args.batches, device,
                                          resolve_memory_format(args.versus))
                rows.append({"loaders": name, "workers": workers, "batches_per_s": round(rate, 3),
                             "steps_per_s": round(1 / step, 3), "ratio": round(rate * step, 2)})
                print(f"{name:<22} workers={workers}  {rate:6.2f} batches/s  x{rate * step:.2f} the step", flush=True)
    result = {"device": args.device, "device_name": device_name(device), "cpu_count": os.cpu_count(),
              "load_average_1min": round(os.getloadavg()[0], 2), "torch": torch.__version__, "arch": args.versus,
              "decode_cache": args.decode_cache,
              "image": f"{2 * STEP_HEIGHT}x{STEP_HEIGHT} PNG", "crop": STEP_CROP, "batch_size": STEP_BATCH,
              "step_ms": round(1000 * step, 1), "per_sample": costs, "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(f"| loaders | workers (each) | batches/s delivered | steps/s consumed ({args.versus}) "
          "| delivered / consumed |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['loaders']} | {row['workers']} | {row['batches_per_s']:.2f} | {row['steps_per_s']:.3f} | "
              f"{row['ratio']:.2f} |")


def use_decode_cache(enabled: bool, tmp: Path, datasets: list[LabeledDataset | UnlabeledDataset]) -> None:
    """``--decode-cache``: read the datasets through a decode cache (``engine.data.decode_cache``)
    in ``tmp``, filled by one untimed pass, as a run finds it after its first epoch."""
    if not enabled:
        return
    cache = DecodeCache(tmp / "decode-cache")
    for dataset in datasets:
        dataset.cache = cache
        for i in range(len(dataset)):
            dataset.load(i)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def per_sample_ms(dataset: LabeledDataset | UnlabeledDataset, count: int) -> tuple[float, float, float]:
    """Median ms, in this process, to decode one image + mask, to make one item from it (decode
    and geometry: a loader worker's share), and to finish that item into the batch contract on the
    CPU (normalisation, the strong views' colour and blur: on CUDA the device does this part)."""
    decode, item, finish = [], [], []
    for i in range(count):
        start = time.perf_counter()
        dataset.load(i % len(dataset))
        decode.append(time.perf_counter() - start)
        start = time.perf_counter()
        batch = default_collate([dataset[i % len(dataset)]])
        item.append(time.perf_counter() - start)
        start = time.perf_counter()
        dataset.finish(batch, batch)
        finish.append(time.perf_counter() - start)
    decode_ms, item_ms, finish_ms = (1000 * statistics.median(times) for times in (decode, item, finish))
    return decode_ms, item_ms, finish_ms


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32, help="scenes to generate")
    parser.add_argument("--batches", type=int, default=12, help="timed batches per row (batch size 8)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--json", type=Path, default=None,
                        help="default: bench/out/data.json, or bench/out/data-versus-ARCH.json with --versus")
    parser.add_argument("--versus", metavar="ARCH", help="Compare the loaders with ARCH's training step (see above).")
    parser.add_argument("--device", default="cpu", help="--versus: where the step runs (cpu, cuda).")
    parser.add_argument("--steps", type=int, default=2, help="--versus: timed steps, after one untimed.")
    parser.add_argument("--decode-cache", action="store_true",
                        help="Read the images through a filled SEGLAB_DECODE_CACHE (engine.data.decode_cache).")
    args = parser.parse_args(argv)
    # More workers than cores is what the table measures; torch's advice about it is noise here.
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    if args.versus:
        args.json = args.json or Path(__file__).parent / "out" / f"data-versus-{args.versus}.json"
        keep_up(args)  # the step uses every core, as a training process does
        return
    args.json = args.json or Path(__file__).parent / "out" / "data.json"
    torch.set_num_threads(1)  # as in a DataLoader worker; the main-process row then compares fairly
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "scenes"
        write_scenes(root, args.images)
        index = load_index(root)
        budget = split_label_budget(index, "1/2", seed=0)
        every_id = budget.labeled_ids + budget.unlabeled_ids
        pipelines = {
            "labelled (scale, crop, flip)": LabeledDataset(index, every_id, CROP),
            "unlabelled (weak + 2 strong + 2 cutmix)": UnlabeledDataset(index, every_id, CROP),
        }
        use_decode_cache(args.decode_cache, Path(tmp), list(pipelines.values()))
        costs = []
        for name, dataset in pipelines.items():
            decode, item, finish = per_sample_ms(dataset, 2 * args.images)
            costs.append({"pipeline": name, "decode_ms": round(decode, 1), "augment_ms": round(item - decode, 1),
                          "finish_ms": round(finish, 1), "sample_ms": round(item + finish, 1)})
            print(f"{name:<42} decode {decode:6.1f} ms + augment {item - decode:6.1f} ms + finish {finish:6.1f} ms "
                  "per sample", flush=True)
            for workers in args.workers:
                rate = images_per_second(dataset, workers, args.batches)
                rows.append({"pipeline": name, "workers": workers, "images_per_s": round(rate, 1)})
                print(f"{name:<42} workers={workers}  {rate:7.1f} images/s", flush=True)
    result = {
        "device": "cpu", "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "load_average_1min": round(os.getloadavg()[0], 2),  # other processes competing for the same cores
        "decode_cache": args.decode_cache,
        "torch": torch.__version__, "image": f"{WIDTH}x{HEIGHT} PNG", "crop": CROP, "batch_size": BATCH,
        "per_sample": costs, "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print("| pipeline | decode ms | augment ms (worker) | finish ms (device; here the CPU) | sample ms (1 process) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for cost in costs:
        print(f"| {cost['pipeline']} | {cost['decode_ms']} | {cost['augment_ms']} | {cost['finish_ms']} | "
              f"{cost['sample_ms']} |")
    print()
    print("| pipeline | workers | images/s |")
    print("| --- | ---: | ---: |")
    for row in rows:
        print(f"| {row['pipeline']} | {row['workers']} | {row['images_per_s']} |")


if __name__ == "__main__":
    main()
