"""The typed run configuration, built from flat JSON and validated once, at the edge.

A run is stored as its flat JSON (``RunConfig.to_flat()``): what the web form posts,
what the API accepts, what ``python -m engine train --config`` reads, and what the
worker rebuilds identically. ``FIELDS`` is the one description of every key (type,
default, range, help): the form, the API schema and the CLI flags are generated from
it, and ``from_flat`` refuses anything else with errors that name the field.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.data.budget import parse_labeled
from engine.data.transforms import BLUR_MODES
from engine.methods import METHODS
from engine.models import MEMORY_FORMATS, MODELS
from engine.options import Option, OptionError, clean_options, shorten
from engine.registry import Registry, RegistryError


class ConfigError(OptionError):
    """Invalid run configuration; ``errors`` maps each flat field name to what is wrong."""


@dataclass(frozen=True)
class Field:
    part: str  # which section of RunConfig the value lands in
    option: Option


def _f(part: str, name: str, type_: str, default: Any, help_: str, **kw: Any) -> Field:
    return Field(part, Option(name, type_, default, help_, **kw))


#: Seeds go to torch, numpy and Python's random alike; numpy takes 32 bits.
MAX_SEED = 2**32 - 1
MAX_ITERS = 10_000_000
#: The largest device index ``cuda:N`` names; no host has more GPUs than this.
MAX_CUDA_INDEX = 255
#: Processes of one run: one host's GPUs (docs/distributed.md).
MAX_GPUS = 8
#: Must fit inside the run: a warm-up longer than the run never reaches the learning rate
#: asked for. (An evaluation or log interval longer than the run means "at the end only",
#: which is what the short runs of tests and benchmarks want; MAX_ITERS bounds them.)
WITHIN_RUN = ("warmup_iters",)
#: Mixed precision: ``auto`` picks bf16 or fp16 by what the GPU supports (``engine.evaluation.amp_dtype``).
AMP_CHOICES = ("auto", "off", "bf16", "fp16")
#: Longest unknown field name an error message repeats.
MAX_SHOWN_NAME = 60

FIELDS: tuple[Field, ...] = (
    _f("data", "data", "str", "", "Dataset folder or zip (images/ + masks/ [+ classes.json])."),
    _f("data", "crop_size", "int", 64, "Training crop side in pixels; smaller images are padded with the ignore label.",
       min=16, max=2048, label="Crop size (px)"),
    _f("data", "min_scale", "float", 0.5, "Smallest random rescaling of training images (UniMatch: 0.5).",
       min=0.1, max=4.0, label="Minimum scale"),
    _f("data", "max_scale", "float", 2.0,
       "Largest random rescaling of training images (UniMatch: 2.0); 1 and 1 turn rescaling off.",
       min=0.1, max=4.0, label="Maximum scale"),
    _f("data", "strong_blur", "str", "crop",
       "Gaussian blur of the strong views (p=0.5). crop: UniMatch's sigma 0.1-2.0 px, "
       "set for its 321 px Pascal crop, scaled to this crop (0.02-0.4 px at 64 px), so that it blurs the same share "
       "of the image. pixels: 0.1-2.0 px at any crop, as UniMatch's code; at 64 px that erases small objects.",
       choices=BLUR_MODES, label="Strong-view blur"),
    _f("data", "val_fraction", "float", 0.2,
       "Share of masked images held out for validation when the dataset has no splits/val.txt.",
       min=0.0, max=0.9, label="Validation share"),
    _f("data", "num_workers", "int", -1, "DataLoader worker processes per loader: -1 = auto (none on the CPU, "
       "whose cores run the training; on CUDA the host's cores shared among the run's GPUs and loaders, at most 8), "
       "0 = load in the training process. Results do not depend on it.",
       min=-1, max=32, label="Data loader workers"),
    _f("model", "arch", "str", "unet", "Architecture (see the catalogue).", label="Architecture"),
    _f("method", "method", "str", "supervised", "Semi-supervised method (see the catalogue)."),
    _f("budget", "labeled", "str", "1/8",
       "Label budget: a fraction of the masked training images (1/16, 1/8, 1/4, 1/2, all) or a count (16).",
       label="Label budget"),
    _f("budget", "seed", "int", 0, "Random seed of the label budget, the initialisation and the augmentations.",
       min=0, max=MAX_SEED),
    _f("schedule", "iters", "int", 1000, "Training iterations.", min=1, max=MAX_ITERS, label="Iterations"),
    _f("schedule", "batch_size", "int", 8, "Labelled images per step.", min=1, max=1024, label="Labelled batch size"),
    _f("schedule", "unlabeled_batch_size", "int", 0, "Unlabelled images per step (0 = same as batch_size).",
       min=0, max=1024, label="Unlabelled batch size"),
    _f("schedule", "optimizer", "str", "adamw", "Optimiser.", choices=("adamw", "sgd")),
    _f("schedule", "lr", "float", 2e-3, "Peak learning rate (poly decay to 0).",
       min=1e-7, max=10.0, label="Learning rate"),
    _f("schedule", "weight_decay", "float", 1e-4, "Weight decay.", min=0.0, max=1.0),
    _f("schedule", "momentum", "float", 0.9, "SGD momentum.", min=0.0, max=0.999),
    _f("schedule", "poly_power", "float", 0.9, "Exponent of the poly learning-rate decay (DeepLab's 0.9).",
       min=0.0, max=5.0, label="Poly power"),
    _f("schedule", "warmup_iters", "int", 0, "Linear warm-up iterations (at most the run's iterations).",
       min=0, max=MAX_ITERS, label="Warm-up iterations"),
    _f("schedule", "grad_clip", "float", 0.0, "Clip the gradient norm to this value (0 = off).",
       min=0.0, max=1e6, label="Gradient clipping"),
    _f("schedule", "eval_every", "int", 0,
       "Evaluate every N iterations (0 = ten times per run; more than iters = at the end only).",
       min=0, max=MAX_ITERS, label="Evaluate every"),
    _f("schedule", "log_every", "int", 10, "Log losses every N iterations (and at the last one).",
       min=1, max=MAX_ITERS, label="Log every"),
    _f("schedule", "eval_mode", "str", "whole",
       "Evaluate whole images, or slide an eval_crop window over images larger than it "
       "(windows overlap by a third, as mmsegmentation's slide inference).",
       choices=("whole", "sliding"), label="Evaluation mode"),
    _f("schedule", "eval_crop", "int", 512, "Sliding-window side in pixels; images no larger are evaluated whole.",
       min=16, max=8192, label="Sliding window (px)"),
    _f("device", "device", "str", "auto", "auto, cpu, cuda or cuda:N."),
    _f("device", "amp", "str", "auto", "Mixed precision on CUDA, in training and evaluation. auto: bf16 where the GPU "
       "has it (Ampere and later), else fp16 with a gradient scaler; off: float32. The CPU always computes in float32 "
       "(its autocast is slower than float32 for these models).", choices=AMP_CHOICES, label="Mixed precision"),
    _f("device", "memory_format", "str", "auto", "Layout of the network's weights and inputs. auto: the architecture's "
       "own (see the catalogue), measured to be the faster one; both compute the same function within floating-point "
       "rounding.", choices=("auto", *MEMORY_FORMATS), label="Memory format"),
    _f("device", "compile", "bool", False, "Compile the network with torch.compile for training and evaluation: "
       "faster steps after a compilation of a minute or more at the start (and again for evaluation).",
       label="torch.compile"),
    _f("device", "deterministic", "bool", False, "Deterministic algorithms (slower; exact resume on the CPU).",
       label="Deterministic"),
    _f("device", "gpus", "int", 1, "Processes of one run, one per GPU (DistributedDataParallel, docs/distributed.md); "
       "batch_size is per process, so the effective batch is batch_size x gpus; lr is used as given (the linear "
       "scaling rule of Goyal et al. 2017 would multiply it by gpus). On the CPU each process uses the gloo backend.",
       min=1, max=MAX_GPUS, label="GPUs"),
)
FIELD_BY_NAME = {f.option.name: f for f in FIELDS}
#: Fields added after runs were first saved, with the value that reproduces those runs: a stored
#: config (checkpoint, experiment record) without the field was trained that way, not at today's default.
SAVED_BEFORE_FIELD = {"strong_blur": "pixels", "memory_format": "contiguous", "compile": False}


def upgrade_saved(flat: Mapping[str, Any]) -> dict[str, Any]:
    """A stored flat config with the fields it predates filled in as it was trained (``SAVED_BEFORE_FIELD``)."""
    return {**SAVED_BEFORE_FIELD, **flat}


#: Dict-valued keys validated against the chosen architecture's / method's own options.
OPTION_KEYS = ("model_options", "method_options")


@dataclass(frozen=True)
class DataConfig:
    data: str
    crop_size: int
    min_scale: float
    max_scale: float
    strong_blur: str
    val_fraction: float
    num_workers: int


@dataclass(frozen=True)
class ModelConfig:
    arch: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodConfig:
    method: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BudgetConfig:
    labeled: str
    seed: int


@dataclass(frozen=True)
class ScheduleConfig:
    iters: int
    batch_size: int
    unlabeled_batch_size: int
    optimizer: str
    lr: float
    weight_decay: float
    momentum: float
    poly_power: float
    warmup_iters: int
    grad_clip: float
    eval_every: int
    log_every: int
    eval_mode: str
    eval_crop: int

    @property
    def evaluation_interval(self) -> int:
        return self.eval_every or max(1, self.iters // 10)


@dataclass(frozen=True)
class DeviceConfig:
    device: str
    amp: str
    memory_format: str
    compile: bool
    deterministic: bool
    gpus: int


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig
    model: ModelConfig
    method: MethodConfig
    budget: BudgetConfig
    schedule: ScheduleConfig
    device: DeviceConfig

    @classmethod
    def from_flat(cls, values: Mapping[str, Any], *, require_data: bool = True) -> RunConfig:
        """Validate flat JSON; raise ConfigError listing every wrong field at once."""
        values = dict(values)
        if isinstance(values.get("labeled"), (int, float)) and not isinstance(values["labeled"], bool):
            values["labeled"] = str(values["labeled"])  # JSON may send a count as a number
        errors: dict[str, str] = {}
        for name in values:
            if name not in FIELD_BY_NAME and name not in OPTION_KEYS:
                errors[shorten(str(name), MAX_SHOWN_NAME)] = ("unknown field; valid fields: "
                                                              + ", ".join([*FIELD_BY_NAME, *OPTION_KEYS]))
        cleaned: dict[str, Any] = {}
        for f in FIELDS:
            name = f.option.name
            try:
                cleaned[name] = f.option.clean(values[name]) if name in values else f.option.default
            except ValueError as error:
                errors[name] = str(error)
        if require_data and not str(values.get("data", "")).strip():
            errors["data"] = "required: the dataset folder or zip"
        if "labeled" not in errors:
            try:
                parse_labeled(cleaned["labeled"])
            except ValueError as error:
                errors["labeled"] = str(error)
        if "min_scale" not in errors and "max_scale" not in errors and cleaned["min_scale"] > cleaned["max_scale"]:
            errors["min_scale"] = f"must not exceed max_scale ({cleaned['max_scale']}); got {cleaned['min_scale']}"
        if "iters" in cleaned:
            for name in WITHIN_RUN:
                if (name in cleaned and cleaned[name] > cleaned["iters"]
                        and cleaned[name] != FIELD_BY_NAME[name].option.default):
                    errors[name] = (f"must not exceed iters ({cleaned['iters']}), the length of the run; "
                                    f"got {cleaned[name]}")
        if "device" in cleaned and not _valid_device(cleaned["device"]):
            errors["device"] = (f"expected auto, cpu, cuda or cuda:N (N at most {MAX_CUDA_INDEX}); "
                                f"got {shorten(cleaned['device'], MAX_SHOWN_NAME)!r}")
        elif cleaned.get("gpus", 1) > 1 and cleaned.get("device", "").startswith("cuda:"):
            errors["device"] = (f"with gpus {cleaned['gpus']} use cuda or auto: process r trains on cuda:r of the GPUs "
                                "that CUDA_VISIBLE_DEVICES shows")
        sections: dict[str, tuple[Registry[Any], str]] = {"model_options": (MODELS, "arch"),
                                                         "method_options": (METHODS, "method")}
        for key, (registry, name_key) in sections.items():
            name = cleaned.get(name_key, FIELD_BY_NAME[name_key].option.default)
            try:
                entry = registry.get(name)
            except RegistryError as error:
                errors[name_key] = str(error)
                continue
            raw = values.get(key) or {}
            if not isinstance(raw, Mapping):
                errors[key] = "expected an object of option names to values"
                continue
            try:
                cleaned[key] = clean_options(entry.options, raw, prefix=f"{key}.")
            except OptionError as error:
                errors.update(error.errors)
        if errors:
            raise ConfigError(errors)
        parts: dict[str, dict[str, Any]] = {}
        for f in FIELDS:
            parts.setdefault(f.part, {})[f.option.name] = cleaned[f.option.name]
        return cls(
            data=DataConfig(**parts["data"]),
            model=ModelConfig(parts["model"]["arch"], cleaned["model_options"]),
            method=MethodConfig(parts["method"]["method"], cleaned["method_options"]),
            budget=BudgetConfig(**parts["budget"]),
            schedule=ScheduleConfig(**parts["schedule"]),
            device=DeviceConfig(**parts["device"]),
        )

    def to_flat(self) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for part in (self.data, self.budget, self.schedule, self.device):
            flat.update(asdict(part))
        flat["arch"] = self.model.arch
        flat["model_options"] = dict(self.model.options)
        flat["method"] = self.method.method
        flat["method_options"] = dict(self.method.options)
        return flat


def _valid_device(device: str) -> bool:
    if device in ("auto", "cpu", "cuda"):
        return True
    index = device[5:]
    return (device.startswith("cuda:") and 0 < len(index) <= len(str(MAX_CUDA_INDEX)) and index.isascii()
            and index.isdigit() and int(index) <= MAX_CUDA_INDEX)


def config_schema() -> list[dict[str, Any]]:
    """Every flat field with its section, type, default, range and help."""
    return [{"section": f.part, **f.option.describe()} for f in FIELDS]


def config_json_schema(include_data: bool = False) -> dict[str, Any]:
    """The flat run configuration as one JSON Schema object: every field with its type,
    default, range, choices and help, the architecture and method names from their
    registries, and each one's own options under ``model_options`` / ``method_options``."""
    properties = {f.option.name: f.option.json_schema() for f in FIELDS if include_data or f.option.name != "data"}
    properties["arch"]["enum"] = MODELS.names()
    properties["method"]["enum"] = METHODS.names()
    for key, registry, chosen in (("model_options", MODELS, "arch"), ("method_options", METHODS, "method")):
        by_name = {name: {"type": "object", "additionalProperties": False,
                          "properties": {o.name: o.json_schema() for o in registry.get(name).options}}
                   for name in registry.names()}
        properties[key] = {"type": "object", "default": {},
                           "description": f"Options of the chosen {chosen}; each {chosen}'s are listed in "
                                          f"x-options-by-{chosen} and in /api/v1/catalogue/.",
                           f"x-options-by-{chosen}": by_name}
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "description": "A run's settings; every field is optional and takes its default when left out."}
