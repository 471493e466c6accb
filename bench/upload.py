"""Upload validation speed: ``inspect_dataset`` on a generated folder of small image/mask pairs.

Every image and mask is decoded in full on the inspector's thread pool (a PNG with valid
CRCs but broken pixel data is caught); this measures what that costs on an upload of
``--pairs`` pairs (2 x pairs files), best of ``--repeats``.

    PYTHONPATH=. python bench/upload.py [--pairs 5000] [--size 32] [--repeats 5] [--json bench/out/upload.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from engine.data import inspect_dataset
from engine.data.builtin.demo import generate_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path("bench/out/upload.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="seglab-inspect-") as scratch:
        folder = generate_demo(Path(scratch) / "data", num_images=args.pairs, num_unlabeled=0, size=args.size)
        times = []
        for _ in range(args.repeats):
            (folder / "dataset.json").unlink(missing_ok=True)
            start = time.perf_counter()
            info = inspect_dataset(folder)
            times.append(time.perf_counter() - start)
    files = 2 * info.num_labeled
    best = min(times)
    print(f"{files:,} files ({args.pairs:,} {args.size}x{args.size} image/mask pairs), {os.cpu_count()} CPUs, "
          f"{platform.node()}")
    print("| files | best (s) | median (s) | files/s |")
    print("| ---: | ---: | ---: | ---: |")
    print(f"| {files:,} | {best:.2f} | {sorted(times)[len(times) // 2]:.2f} | {files / best:,.0f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"files": files, "seconds": times, "machine": platform.node()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
