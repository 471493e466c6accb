"""Registry-driven tests of every semi-supervised method: a newly registered one is covered
with no new code (it only needs its row in DOCUMENTED_DEFAULTS)."""
from __future__ import annotations

import copy
import random
from functools import cache

import pytest
import torch

from engine.config import RunConfig
from engine.data.builtin.demo import generate_demo
from engine.methods import METHODS, build_method, list_methods
from engine.methods.base import IGNORE_INDEX
from engine.models import build_model, list_models
from engine.options import OptionError
from engine.trainer import train
from tests.engine.conftest import TINY_UNET

pytestmark = pytest.mark.usefixtures("single_thread")

NUM_CLASSES = 5
METHOD_NAMES = [entry["name"] for entry in list_methods()]
SSL_METHODS = [name for name in METHOD_NAMES if METHODS.get(name).factory.uses_unlabeled]
#: Small option overrides that keep a CPU step cheap without changing what the code does.
CHEAP_OPTIONS = {"contrastive": {"num_queries": 8, "num_negatives": 16}}

#: Each method's defaults, mirroring the docstrings (and docs/methods.md), which cite their source.
DOCUMENTED_DEFAULTS = {
    "supervised": {"aux_weight": 0.4},
    "mean_teacher": {"ema_decay": 0.99, "consistency_weight": 100.0, "rampup": 0.1},
    "cutmix": {"ema_decay": 0.99, "consistency_weight": 1.0, "confidence_threshold": 0.97, "mask_area": 0.5,
               "consistency_loss": "var"},
    "classmix": {"ema_decay": 0.99, "consistency_weight": 1.0, "confidence_threshold": 0.968},
    "cct": {"consistency_weight": 30.0, "rampup": 0.1, "dropout": 1, "feature_drop": 1, "feature_noise": 1,
            "object_masking": 1, "context_masking": 1, "guided_cutout": 1, "vat": 0},
    "fixmatch": {"confidence_threshold": 0.95, "cutmix": True, "threshold_mode": "fixed"},
    "cps": {"cps_weight": 1.5, "cutmix": True},
    "self_training": {"teacher_fraction": 0.4, "checkpoints": 3, "reliable_fraction": 0.5},
    "adversarial": {"lambda_adv_pred": 0.01, "lambda_semi": 0.1, "lambda_semi_adv": 0.001, "trust_threshold": 0.2,
                    "semi_start": 0.25, "discriminator_lr": 1e-4},
    "contrastive": {"ema_decay": 0.99, "weak_threshold": 0.7, "strong_threshold": 0.97, "temperature": 0.5,
                    "num_queries": 256, "num_negatives": 512, "output_dim": 256, "contrastive_weight": 1.0},
    "unimatch": {"confidence_threshold": 0.95, "feature_dropout": 0.5, "threshold_mode": "fixed", "teacher_ema": 0.0,
                 "rampup": 0.0, "joint_bn": True, "fp_stream": True,
                 "strong_color": True, "box_area": 0.0, "partner": "unlabeled", "target": "hard"},
}
DOCUMENTED_FAMILIES = {"baseline", "GAN-based", "consistency regularisation", "pseudo-labelling", "contrastive",
                       "hybrid"}


def _smallest_per_family() -> dict[str, str]:
    smallest: dict[str, dict] = {}
    for entry in list_models():
        if entry["family"] not in smallest or entry["parameters"] < smallest[entry["family"]]["parameters"]:
            smallest[entry["family"]] = entry
    return {family: entry["name"] for family, entry in smallest.items()}


ARCHITECTURES = sorted(_smallest_per_family().values())
#: (input side, steps): UNet is cheap enough for several steps; the others take one at an odd size.
SCHEDULE = {"unet": (32, 3)}
DEFAULT_SCHEDULE = (33, 1)


@cache
def _prototype(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(arch, NUM_CLASSES, **(TINY_UNET if arch == "unet" else {}))


def factory(arch: str = "unet"):
    """A model factory that copies a cached prototype: building ResNet-50s dominates otherwise."""
    return lambda: copy.deepcopy(_prototype(arch))


def make_batches(size: int, batch: int = 2, seed: int = 0) -> tuple[dict, dict]:
    generator = torch.Generator().manual_seed(seed)
    mask = torch.randint(0, NUM_CLASSES, (batch, size, size), generator=generator)
    mask[:, :2] = IGNORE_INDEX
    padding = torch.zeros(batch, size, size, dtype=torch.bool)
    padding[:, :, -3:] = True
    box = torch.zeros(batch, size, size)
    box[:, size // 4: size // 2, size // 4: size // 2] = 1
    labeled = {"image": torch.randn(batch, 3, size, size, generator=generator), "mask": mask}
    unlabeled = {
        "image_weak": torch.randn(batch, 3, size, size, generator=generator),
        "image_strong1": torch.randn(batch, 3, size, size, generator=generator),
        "image_strong2": torch.randn(batch, 3, size, size, generator=generator),
        "cutmix_box1": box, "cutmix_box2": box.flip(-1), "padding": padding,
        "hidden_mask": torch.randint(0, NUM_CLASSES, (batch, size, size),
                                     generator=generator).masked_fill(padding, IGNORE_INDEX),
    }
    return labeled, unlabeled


def run_steps(method, size: int, steps: range, total_steps: int) -> list[dict]:
    """Train like the trainer does: step, backward, optimiser, hook; return each step's dict."""
    optimizer = torch.optim.SGD(list(method.optimizer_parameters()), lr=0.01)
    method.train()
    results = []
    for step in steps:
        labeled, unlabeled = make_batches(size, seed=step)
        losses = method.training_step(labeled, unlabeled, step, total_steps)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        method.after_optimizer_step(step, total_steps)
        results.append(losses)
    return results


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("name", METHOD_NAMES)
def test_method_trains_every_architecture_with_finite_losses(name, arch):
    torch.manual_seed(0)
    size, steps = SCHEDULE.get(arch, DEFAULT_SCHEDULE)
    method = build_method(name, factory(arch), NUM_CLASSES, **CHEAP_OPTIONS.get(name, {}))

    # The last steps of a one-step-longer run: staged methods (ST++, adversarial warm-up) reach their later stage.
    results = run_steps(method, size, range(1, steps + 1), total_steps=steps + 1)

    for losses in results:
        # A diagnostic is NaN on a step without a value (no trusted pixel with a known label).
        values = [value for name, value in losses.items() if name != "pseudo_label_accuracy" or not value.isnan()]
        assert all(torch.isfinite(value).all() for value in values), losses
        assert losses["loss"].requires_grad
    if name in SSL_METHODS:
        assert "pseudo_label_coverage" in results[-1]
        assert 0.0 <= float(results[-1]["pseudo_label_coverage"]) <= 1.0
    with torch.no_grad():
        assert method.eval_model().eval()(torch.randn(1, 3, size, size)).shape == (1, NUM_CLASSES, size, size)


#: The methods whose step reads values back from the device, and why (issue 22 allows no other).
HOST_READS = {
    "classmix": "randperm(count) of each image's classes needs the counts on the host",
    "contrastive": "ClassMix's counts, and ReCo's pixels, classes and queries per class",
    "cct": "guided cutout draws its boxes with Python's random from the class bounds",
}


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_training_step_reads_nothing_back_from_the_device(name):
    """On the meta device tensors have shapes but no values, so anything that reads one on the host
    (``.item()``, ``bool()``, ``.tolist()``, ``nonzero``, ``unique``) raises: on a GPU each such
    read waits for the device. Random draws on the CPU generator (box positions) read nothing back."""
    torch.manual_seed(0)
    method = build_method(name, factory(), NUM_CLASSES, **CHEAP_OPTIONS.get(name, {})).to("meta").train()
    labeled, unlabeled = ({k: v.to("meta") for k, v in batch.items()} for batch in make_batches(32))

    def step():
        losses = method.training_step(labeled, unlabeled, 1, 2)  # the later stage of staged methods
        losses["loss"].backward()
        method.after_optimizer_step(1, 2)
        return losses

    if name in HOST_READS:
        with pytest.raises(NotImplementedError):
            step()
    else:
        assert all(value.device.type == "meta" for value in step().values())  # tensors, not host numbers


def test_every_method_has_documented_defaults_and_family():
    assert set(METHOD_NAMES) == set(DOCUMENTED_DEFAULTS), "add the new method's defaults to DOCUMENTED_DEFAULTS"
    for entry in list_methods():
        assert {option["name"]: option["default"] for option in entry["options"]} == DOCUMENTED_DEFAULTS[entry["name"]]
        assert entry["family"] in DOCUMENTED_FAMILIES
        assert "arXiv" in entry["paper"] or entry["name"] == "supervised"


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_out_of_range_hyper_parameter_is_refused_naming_the_field(name):
    option = next(o for o in METHODS.get(name).options if o.max is not None)

    with pytest.raises(OptionError) as error:
        build_method(name, factory(), NUM_CLASSES, **{option.name: option.max + 1})

    assert option.name in error.value.errors
    assert option.name in str(error.value)


@pytest.mark.parametrize("name", SSL_METHODS)
def test_hidden_mask_never_changes_the_loss(name):
    torch.manual_seed(0)
    method = build_method(name, factory(), NUM_CLASSES, **CHEAP_OPTIONS.get(name, {})).train()
    twin = copy.deepcopy(method)
    labeled, unlabeled = make_batches(32)
    perturbed = {**unlabeled, "hidden_mask": (unlabeled["hidden_mask"] + 1) % NUM_CLASSES}

    random.seed(1), torch.manual_seed(1)
    original_losses = method.training_step(labeled, unlabeled, 1, 2)
    random.seed(1), torch.manual_seed(1)
    perturbed_losses = twin.training_step(labeled, perturbed, 1, 2)

    assert torch.equal(original_losses["loss"], perturbed_losses["loss"])


@pytest.mark.parametrize("name", SSL_METHODS)
def test_diagnostics_score_pseudo_labels_against_the_hidden_mask(name):
    torch.manual_seed(0)
    # A threshold of 0 makes every pixel trusted, so accuracy is always defined.
    option_names = {option.name for option in METHODS.get(name).options}
    trust_all = {option: 0.0 for option in ("confidence_threshold", "strong_threshold", "trust_threshold")
                 if option in option_names}
    method = build_method(name, factory(), NUM_CLASSES, **CHEAP_OPTIONS.get(name, {}), **trust_all).train()
    labeled, unlabeled = make_batches(32)

    losses = method.training_step(labeled, unlabeled, 1, 2)

    assert 0.0 < float(losses["pseudo_label_coverage"]) <= 1.0
    assert 0.0 <= float(losses["pseudo_label_accuracy"]) <= 1.0


class RecordingReporter:
    """Keeps every metric point; never asks to stop."""

    def __init__(self) -> None:
        self.metrics: list[tuple[int, dict[str, float]]] = []

    def log_metrics(self, step, metrics):
        self.metrics.append((step, metrics))

    def log_evaluation(self, step, result):
        pass

    def log_predictions(self, step, samples):
        pass

    def log_checkpoint(self, path, step, is_best):
        pass

    def should_stop(self):
        return False


def test_unimatch_trains_through_the_trainer_and_reports_pseudo_label_quality(tmp_path):
    dataset = generate_demo(tmp_path / "demo", num_images=24, num_unlabeled=8, size=32)
    config = RunConfig.from_flat({
        "data": str(dataset), "arch": "unet", "model_options": TINY_UNET, "method": "unimatch",
        "method_options": {"confidence_threshold": 0.0},  # every pixel trusted: accuracy is defined from step 1
        "labeled": "4", "crop_size": 32, "batch_size": 2, "iters": 3, "eval_every": 3, "log_every": 1, "device": "cpu",
    })
    reporter = RecordingReporter()

    result = train(config, reporter)

    assert result.steps == 3
    assert [step for step, _ in reporter.metrics] == [1, 2, 3]
    for _, metrics in reporter.metrics:
        assert {"loss", "loss_x", "loss_u_s1", "loss_u_s2", "loss_u_w_fp"} <= set(metrics)
        assert metrics["pseudo_label_coverage"] > 0.0
    # A batch of images that never had masks has nothing to score: accuracy is then left out.
    accuracies = [metrics["pseudo_label_accuracy"] for _, metrics in reporter.metrics
                  if "pseudo_label_accuracy" in metrics]
    assert accuracies and all(0.0 <= accuracy <= 1.0 for accuracy in accuracies)


@pytest.mark.parametrize(("name", "options"), [
    ("fixmatch", {"threshold_mode": "distribution"}),
    ("cps", {"cutmix": False}),
    ("unimatch", {"threshold_mode": "distribution"}),
    ("unimatch", {"threshold_mode": "alignment"}),
    ("unimatch", {"threshold_mode": "debias"}),
    ("unimatch", {"teacher_ema": 0.9}),
    ("unimatch", {"target": "soft"}),
    ("unimatch", {"target": "mse"}),
    ("unimatch", {"strong_color": False}),
    ("unimatch", {"fp_stream": False}),
    ("unimatch", {"joint_bn": False}),
    ("unimatch", {"rampup": 0.5}),
    ("unimatch", {"box_area": 0.5}),
    ("unimatch", {"partner": "labeled"}),
    ("unimatch", {"partner": "labeled", "target": "mse"}),
])
def test_pseudo_label_variants_train_and_keep_their_state(name, options):
    torch.manual_seed(0)
    method = build_method(name, factory(), NUM_CLASSES, **options)
    for losses in run_steps(method, 32, range(3), 3):
        assert torch.isfinite(losses["loss"])
    if options.get("threshold_mode") in ("distribution", "alignment"):
        assert method.threshold.class_counts.sum() > 0  # the labelled prior was counted
        assert "threshold.class_counts" in method.state_dict()  # and is checkpointed
    if options.get("threshold_mode") == "debias":
        assert method.threshold.predicted.sum().item() == pytest.approx(1.0)  # the running predicted marginal
        assert "threshold.predicted" in method.state_dict()  # is checkpointed
    if "teacher_ema" in options:
        assert method.eval_model() is method.teacher
        student, teacher = (dict(m.named_parameters()) for m in (method.model, method.teacher))
        assert any(not torch.equal(student[k], teacher[k]) for k in student)  # the teacher lags the student
