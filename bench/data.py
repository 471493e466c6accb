"""Data pipeline throughput: images/s of the training loaders on the CPU.

Writes a set of 1024x512 scenes (Cityscapes' aspect at half resolution) in the upload
layout, then times the labelled pipeline (scale, crop, flip, normalise) and the
unlabelled one (the same geometry plus two strong views and CutMix boxes, as UniMatch
feeds its student) through a DataLoader with 0, 2 and 4 workers, 512x512 crops.
Also reports the per-sample cost in one process (decoding vs augmenting), the number to
watch when changing a transform. Prints tables and writes JSON (bench/out/data.json unless --json says otherwise).

    PYTHONPATH=. python bench/data.py [--images 32] [--batches 12] [--json PATH]
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

from engine.data import load_index
from engine.data.budget import split_label_budget
from engine.data.builtin.demo import CLASSES, render_scene
from engine.data.loaders import LabeledDataset, UnlabeledDataset, training_loader

WIDTH, HEIGHT, CROP, BATCH = 1024, 512, 512, 8


def write_scenes(root: Path, count: int) -> None:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        halves = [render_scene(rng, HEIGHT) for _ in range(2)]
        image = np.concatenate([h[0] for h in halves], axis=1)
        mask = np.concatenate([h[1] for h in halves], axis=1)
        Image.fromarray(image).save(root / "images" / f"scene_{i:03d}.png")
        Image.fromarray(mask).save(root / "masks" / f"scene_{i:03d}.png")
    classes = [{"name": name, "color": color} for name, color in CLASSES]
    (root / "classes.json").write_text(json.dumps({"classes": classes}))


def images_per_second(dataset, workers: int, batches: int) -> float:
    loader = training_loader(dataset, BATCH, seed=0, stream=0, num_workers=workers)
    iterator = iter(loader)
    next(iterator)  # worker start-up and first batch are not throughput
    start = time.perf_counter()
    seen = 0
    for _ in range(batches):
        batch = next(iterator)  # the sampler never ends
        seen += len(next(iter(batch.values())))
    elapsed = time.perf_counter() - start
    del iterator, loader
    return seen / elapsed


def per_sample_ms(dataset, count: int) -> tuple[float, float]:
    """Median ms to decode one image + mask, and to produce one whole sample, in this process."""
    decode, whole = [], []
    for i in range(count):
        start = time.perf_counter()
        dataset.load(i % len(dataset))
        decode.append(time.perf_counter() - start)
        start = time.perf_counter()
        dataset[i % len(dataset)]
        whole.append(time.perf_counter() - start)
    return 1000 * statistics.median(decode), 1000 * statistics.median(whole)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32, help="scenes to generate")
    parser.add_argument("--batches", type=int, default=12, help="timed batches per row (batch size 8)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "out" / "data.json")
    args = parser.parse_args()
    # More workers than cores is what the table measures; torch's advice about it is noise here.
    warnings.filterwarnings("ignore", message="This DataLoader will create")
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
        costs = []
        for name, dataset in pipelines.items():
            decode, whole = per_sample_ms(dataset, 2 * args.images)
            costs.append({"pipeline": name, "decode_ms": round(decode, 1), "augment_ms": round(whole - decode, 1),
                          "sample_ms": round(whole, 1)})
            print(f"{name:<42} decode {decode:6.1f} ms + augment {whole - decode:6.1f} ms per sample", flush=True)
            for workers in args.workers:
                rate = images_per_second(dataset, workers, args.batches)
                rows.append({"pipeline": name, "workers": workers, "images_per_s": round(rate, 1)})
                print(f"{name:<42} workers={workers}  {rate:7.1f} images/s", flush=True)
    result = {
        "device": "cpu", "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "load_average_1min": round(os.getloadavg()[0], 2),  # other processes competing for the same cores
        "torch": torch.__version__, "image": f"{WIDTH}x{HEIGHT} PNG", "crop": CROP, "batch_size": BATCH,
        "per_sample": costs, "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print("| pipeline | decode ms | augment ms | sample ms (1 process) |")
    print("| --- | ---: | ---: | ---: |")
    for cost in costs:
        print(f"| {cost['pipeline']} | {cost['decode_ms']} | {cost['augment_ms']} | {cost['sample_ms']} |")
    print()
    print("| pipeline | workers | images/s |")
    print("| --- | ---: | ---: |")
    for row in rows:
        print(f"| {row['pipeline']} | {row['workers']} | {row['images_per_s']} |")


if __name__ == "__main__":
    main()
