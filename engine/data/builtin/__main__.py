"""``python -m engine.data.builtin NAME OUT_DIR [--option value ...]``: write a built-in dataset."""
from __future__ import annotations

import argparse
import sys

from engine.data import inspect_dataset
from engine.data.builtin import GENERATORS, generate
from engine.options import OptionError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.data.builtin", description="Write a built-in dataset.")
    commands = parser.add_subparsers(dest="name", required=True, metavar="NAME")
    for entry in GENERATORS:
        command = commands.add_parser(entry.name, help=entry.paper)
        command.add_argument("out_dir", help="folder to create (absent or empty)")
        for option in entry.options:
            command.add_argument(f"--{option.name.replace('_', '-')}", dest=option.name, default=None,
                                 help=f"{option.help} (default: {option.default!r})")
    arguments = vars(parser.parse_args(argv))
    name, out_dir = arguments.pop("name"), arguments.pop("out_dir")
    options = {key: value for key, value in arguments.items() if value is not None}
    try:
        out = generate(name, out_dir, **options)
    except (OptionError, FileExistsError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    info = inspect_dataset(out)
    print(f"wrote {info.num_images} images ({info.num_train} train, {info.num_val} val) to {out}")
    for item in info.classes:
        print(f"  {item['index']:>2} {item['name']:<12} {100 * item['pixel_share']:5.1f}% of labelled pixels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
