"""``python -m engine``: train, evaluate, predict, list the catalogue, write built-in datasets.

The ``train`` flags are generated from ``engine.config.config_schema()``, so the CLI
offers exactly the fields (defaults, choices, help) that the web form and the API do,
and a run config file is the same flat JSON the worker stores. User errors print one
clear message and exit with status 2; see docs/cli.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from engine.config import AMP_CHOICES, RunConfig, config_schema
from engine.data import inspect_dataset, load_index
from engine.data.budget import validation_ids
from engine.data.loaders import ValidationDataset, read_image
from engine.data.transforms import normalize
from engine.evaluation import (
    Inference,
    LoadedModel,
    amp_dtype,
    evaluate,
    inference_network,
    load_trained_model,
    predict_logits,
    validation_loader,
)
from engine.host_memory import retain_freed_memory
from engine.metrics import segmentation_scores
from engine.models import predicted_classes
from engine.options import OptionError
from engine.registry import RegistryError
from engine.reporting import ConsoleReporter, EvaluationResult
from engine.trainer import TrainingError, resolve_device, train
from engine.transfer import class_mismatches
from engine.visualize import index_png, overlay

#: Exit status of a refused command (argparse's own convention for usage errors).
USAGE_ERROR = 2
#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130
#: Errors whose message is meant for the user, printed without a traceback. ValueError covers
#: ConfigError, OptionError, DatasetError, UsageError and the engine's own input checks.
USER_ERRORS = (TrainingError, RegistryError, FileNotFoundError, FileExistsError, ValueError)


class UsageError(ValueError):
    """A command-line mistake the parser cannot see (a malformed k=v, an empty folder)."""


def parse_pairs(pairs: Sequence[str] | None, flag: str) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}``; values stay text and are typed by the option's own schema."""
    values: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"{flag} expects NAME=VALUE, got {pair!r}")
        values[name.strip()] = value.strip()
    return values


# --- train ---------------------------------------------------------------------------

def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    for field in config_schema():
        flag = "--" + field["name"].replace("_", "-")
        help_text = f"{field['help']} [{field['section']}; default: {field['default']!r}]"
        if field["type"] == "bool":
            parser.add_argument(flag, dest=field["name"], action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_text)
            continue
        if "choices" in field:
            metavar = "{" + ",".join(map(str, field["choices"])) + "}"
        else:
            metavar = field["name"].upper() if field["type"] == "str" else field["type"].upper()
        # Values stay text here: RunConfig.from_flat types and checks them, once, with field-named errors.
        parser.add_argument(flag, dest=field["name"], metavar=metavar, default=argparse.SUPPRESS, help=help_text)


def _read_config_file(path: str) -> dict[str, Any]:
    try:
        values = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise UsageError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(values, dict):
        raise UsageError(f"{path} must hold a JSON object of config fields (see `python -m engine train --help`)")
    return values


def build_config(args: argparse.Namespace) -> RunConfig:
    """The config file (if any), overridden by flags, validated once by ``RunConfig.from_flat``."""
    values = _read_config_file(args.config) if args.config else {}
    values.update({field["name"]: getattr(args, field["name"]) for field in config_schema()
                   if hasattr(args, field["name"])})
    for key, pairs, flag in (("model_options", args.model_option, "--model-option"),
                             ("method_options", args.method_option, "--method-option")):
        if pairs:
            values[key] = {**(values.get(key) or {}), **parse_pairs(pairs, flag)}
    return RunConfig.from_flat(values)


def default_output_dir(config: RunConfig) -> Path:
    """runs/<arch>-<method>-<budget>-seed<seed>: running the same command again resumes it."""
    budget = config.budget.labeled.replace("/", "of")
    return Path("runs") / f"{config.model.arch}-{config.method.method}-{budget}-seed{config.budget.seed}"


def cmd_train(args: argparse.Namespace) -> int:
    config = build_config(args)
    out = Path(args.out) if args.out else default_output_dir(config)
    print(f"training {config.model.arch} / {config.method.method} on {config.data.data}, checkpoints in {out}")
    reporter = ConsoleReporter(config.schedule.iters)
    try:
        result = train(config, reporter, output_dir=out, resume=not args.no_resume)
    finally:
        reporter.close()
    if result.last is not None:
        print(scores_table(result.last))
    best = f"{100 * result.best.miou:.2f} (step {result.best.step})" if result.best else "-"
    print(f"steps {result.steps}{' (stopped)' if result.stopped else ''}; best mIoU {best}; checkpoints in {out}")
    return 0


# --- eval and predict -----------------------------------------------------------------

def _load(args: argparse.Namespace) -> tuple[LoadedModel, torch.device, Inference]:
    device = resolve_device(args.device)
    loaded = load_trained_model(args.checkpoint, device)
    inference = Inference.from_config(loaded.config, device)
    inference = replace(inference, mode=args.eval_mode or inference.mode, crop=args.eval_crop or inference.crop,
                        amp_dtype=amp_dtype(args.amp, device) if args.amp else inference.amp_dtype)
    return loaded, device, inference


def scores_table(result: EvaluationResult) -> str:
    """Per-class IoU, Dice and accuracy, then the means, in percent."""
    accuracy = segmentation_scores(torch.tensor(result.confusion_matrix))["accuracy"]
    width = max(len("class"), *(len(name) for name in result.class_names))

    def cell(value: float | None) -> str:
        return f"{100 * value:7.2f}" if value is not None else f"{'-':>7}"

    lines = [f"{'class':<{width}}  {'IoU':>7}  {'Dice':>7}  {'Acc':>7}"]
    for name, iou, dice, acc in zip(result.class_names, result.iou, result.dice, accuracy, strict=True):
        lines.append(f"{name:<{width}}  {cell(iou)}  {cell(dice)}  {cell(acc)}")
    lines.append(f"mIoU {100 * result.miou:.2f}  mean Dice {100 * result.mean_dice:.2f}  "
                 f"pixel accuracy {100 * result.pixel_accuracy:.2f}  mean accuracy {100 * result.mean_accuracy:.2f}")
    if result.throughput is not None:
        lines.append(f"throughput {result.throughput:.1f} images/s")
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace) -> int:
    loaded, device, inference = _load(args)
    config = loaded.config
    index = load_index(args.data or config.data.data)
    if problems := class_mismatches(list(loaded.class_names), list(index.class_names)):
        raise UsageError("the checkpoint's classes do not match the dataset's: " + "; ".join(problems))
    ids = sorted(index.labeled_ids) if args.split == "all" else validation_ids(index, config.data.val_fraction)
    if not ids:
        raise UsageError(f"no images with masks to evaluate in the {args.split} split of {index.root}")
    dataset = ValidationDataset(index, ids, config.data.crop_size)
    loader = validation_loader(dataset, config.data.num_workers, device)
    result, _ = evaluate(loaded.model, loader, len(index.class_names),
                         index.class_names, device, inference, loaded.step)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"{args.checkpoint} (step {loaded.step}) on {len(ids)} images of {index.root} ({args.split} split)")
        print(scores_table(result))
    return 0


def _is_image(path: Path) -> bool:
    try:
        with Image.open(path):  # reads the header only
            return True
    except (UnidentifiedImageError, OSError):
        return False


def cmd_predict(args: argparse.Namespace) -> int:
    folder = Path(args.images)
    images = sorted(p for p in folder.iterdir() if p.is_file() and _is_image(p)) if folder.is_dir() else []
    if not images:
        raise UsageError(f"{args.images} is not a folder holding images")
    loaded, device, inference = _load(args)
    out = Path(args.out)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    with inference_network(loaded.model) as model:
        for path in images:
            image = read_image(path)  # (3, H, W) uint8
            prediction = predicted_classes(predict_logits(model, normalize(image)[None].to(device), inference))[0]
            prediction = prediction.to(torch.uint8).cpu()
            index_png(prediction, loaded.class_colors).save(out / "masks" / f"{path.stem}.png")
            overlay(image, prediction, loaded.class_colors, args.alpha).save(out / "overlays" / f"{path.stem}.png")
    print(f"wrote {len(images)} masks to {out / 'masks'} and overlays to {out / 'overlays'}")
    return 0


# --- list, dataset -------------------------------------------------------------------

def _options_line(options: list[dict[str, Any]]) -> str:
    return " ".join(f"{option['name']}={option['default']}" for option in options) or "(no options)"


def cmd_list(args: argparse.Namespace) -> int:
    from engine.data.builtin import GENERATORS
    from engine.methods import list_methods
    from engine.models import list_models

    print("Architectures (--arch NAME; --model-option NAME=VALUE):")
    for model in list_models():
        print(f"  {model['name']:<20} {model['family']:<14} {model['parameters'] / 1e6:6.1f}M params  {model['paper']}")
        print(f"  {'':<20} {_options_line(model['options'])}")
    print("Methods (--method NAME; --method-option NAME=VALUE):")
    for method in list_methods():
        print(f"  {method['name']:<20} {method['family']:<14} {method['paper']}")
        print(f"  {'':<20} {_options_line(method['options'])}")
    print("Built-in datasets (python -m engine dataset NAME OUT_DIR; --option NAME=VALUE):")
    for entry in GENERATORS:
        print(f"  {entry.name:<20} {entry.family:<14} {_options_line(entry.describe()['options'])}")
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    from engine.data.builtin import generate

    path = generate(args.name, args.out_dir, **parse_pairs(args.option, "--option"))
    info = inspect_dataset(path)
    print(f"wrote {info.num_images} images ({info.num_train} train, {info.num_val} val) of the {args.name} dataset "
          f"to {path}")
    for item in info.classes:
        print(f"  {item['index']:>2} {item['name']:<12} {100 * item['pixel_share']:5.1f}% of labelled pixels")
    return 0


# --- parser and entry point -----------------------------------------------------------

def _add_inference_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="A best.pt or last.pt written by `train`.")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto).")
    parser.add_argument("--eval-mode", choices=("whole", "sliding"), help="Default: the run's eval_mode.")
    parser.add_argument("--eval-crop", type=int, help="Sliding-window side (default: the run's eval_crop).")
    parser.add_argument("--amp", choices=AMP_CHOICES, help="Mixed precision on CUDA (default: the run's amp; "
                        "off computes in float32).")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description="SegLab engine: semantic segmentation "
                                     "training with semi-supervised methods, without the web lab.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train_parser = commands.add_parser("train", help="Train a run (flags override --config).",
                                       description="Train one run. Every field of the run config is a flag; "
                                       "flags override the values of --config.")
    train_parser.add_argument("--config", metavar="FILE", help="Flat JSON run config (as the web lab stores it).")
    _add_config_flags(train_parser)
    train_parser.add_argument("--model-option", action="append", metavar="NAME=VALUE",
                              help="Architecture option (repeatable; see `list`).")
    train_parser.add_argument("--method-option", action="append", metavar="NAME=VALUE",
                              help="Method option (repeatable; see `list`).")
    train_parser.add_argument("--out", metavar="DIR", help="Checkpoint folder (default: runs/<arch>-<method>-<budget>-"
                              "seed<seed>); training resumes from its last.pt.")
    train_parser.add_argument("--no-resume", action="store_true", help="Start over even if --out holds a checkpoint.")
    train_parser.set_defaults(handler=cmd_train)

    eval_parser = commands.add_parser("eval", help="Print the mIoU table of a checkpoint on a dataset.")
    _add_inference_flags(eval_parser)
    eval_parser.add_argument("--data", help="Dataset folder (default: the run's).")
    eval_parser.add_argument("--split", choices=("val", "all"), default="val",
                             help="val: the run's validation split (default); all: every image with a mask.")
    eval_parser.add_argument("--json", action="store_true", help="Print the evaluation as JSON.")
    eval_parser.set_defaults(handler=cmd_eval)

    predict_parser = commands.add_parser("predict",
                                         help="Write masks (index PNGs) and overlays for a folder of images.")
    _add_inference_flags(predict_parser)
    predict_parser.add_argument("--images", required=True, metavar="DIR", help="Folder of images.")
    predict_parser.add_argument("--out", required=True, metavar="DIR", help="Writes DIR/masks and DIR/overlays.")
    predict_parser.add_argument("--alpha", type=float, default=0.5, help="Overlay opacity of the class colours.")
    predict_parser.set_defaults(handler=cmd_predict)

    list_parser = commands.add_parser("list", help="Print the architectures, methods and built-in datasets.")
    list_parser.set_defaults(handler=cmd_list)

    dataset_parser = commands.add_parser("dataset", help="Write a built-in dataset in the upload layout.")
    dataset_parser.add_argument("name", help="Built-in dataset (see `list`).")
    dataset_parser.add_argument("out_dir", help="Folder to write images/, masks/ and classes.json to.")
    dataset_parser.add_argument("--option", action="append", metavar="NAME=VALUE",
                                help="Generator option (repeatable).")
    dataset_parser.set_defaults(handler=cmd_dataset)
    return parser


def _describe(error: BaseException) -> str:
    if isinstance(error, OptionError):  # ConfigError too: one line per field
        return "invalid settings:\n" + "\n".join(f"  {name}: {message}" for name, message in error.errors.items())
    return str(error)


def main(argv: Sequence[str] | None = None, own_process: bool = False) -> int:
    """Run one command; ``own_process`` (``python -m engine``) lets it keep freed host memory
    for reuse (``engine.host_memory``), as the process exits when the command ends."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        if own_process:
            retain_freed_memory()
        return args.handler(args)
    except USER_ERRORS as error:
        print(f"error: {_describe(error)}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        return INTERRUPTED
