"""Memory format and torch.compile: declared per architecture, the same results in both layouts (issue 22)."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import engine.models
from engine.config import SAVED_BEFORE_FIELD, RunConfig
from engine.evaluation import Inference, load_trained_model, predict_logits
from engine.models import MEMORY_FORMATS, MODELS, build_model, declared_memory_format, resolve_memory_format
from engine.models.base import SegmentationModel
from engine.models.registry import register_model
from engine.trainer import CHECKPOINT_LAST, RESUMABLE_CHANGES, train

pytestmark = pytest.mark.usefixtures("single_thread")  # the shared 2-core CI machine

CHANNELS_LAST = [entry.name for entry in MODELS if entry.extra["memory_format"] == "channels_last"]
NUM_CLASSES = 5
SMALL_ODD_SIZE = (33, 25)  # not a multiple of any output stride
#: float32 logits of the two layouts (eval mode: BatchNorm's fixed statistics), relative to the largest one.
FLOAT32_TOLERANCE = 1e-4
#: A training step is compared in float64. In float32 the two layouts' rounding (the same products summed
#: in other orders) is amplified by training-mode BatchNorm over a 2-image batch: up to 5% apart in the first
#: layer's gradient of DeepLabV3+-R101, while float64 agrees to 1e-10. So the step is checked where rounding
#: cannot hide a real difference, relative to the largest gradient of the network.
FLOAT64_TOLERANCE = 1e-8
#: The learning rate of the compared SGD step: large enough that a wrong gradient moves a weight visibly.
LEARNING_RATE = 0.01


def assert_close_relative(actual: torch.Tensor, expected: torch.Tensor, what: str, tolerance: float,
                          scale: float | None = None) -> None:
    scale = expected.abs().max().item() if scale is None else scale
    difference = (actual - expected).abs().max().item()
    assert difference <= tolerance * scale, f"{what}: differs by {difference:.3g} (scale {scale:.3g})"


def test_every_architecture_declares_a_memory_format_that_the_catalogue_shows():
    for entry in engine.models.list_models():
        assert entry["memory_format"] in MEMORY_FORMATS, entry["name"]
        assert declared_memory_format(entry["name"]) == entry["memory_format"]


def test_an_unknown_memory_format_is_refused_at_registration():
    with pytest.raises(ValueError, match="memory_format must be one of contiguous, channels_last"):
        register_model("nhwc_net", family="test", paper="none", memory_format="nhwc")
    assert "nhwc_net" not in MODELS


def test_a_run_setting_overrides_the_declared_format():
    name = MODELS.names()[0]
    assert resolve_memory_format(name) == MEMORY_FORMATS[declared_memory_format(name)]
    assert resolve_memory_format(name, "auto") == MEMORY_FORMATS[declared_memory_format(name)]
    assert resolve_memory_format(name, "contiguous") == torch.contiguous_format
    assert resolve_memory_format(name, "channels_last") == torch.channels_last


def one_training_step(model: SegmentationModel, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    torch.manual_seed(1)  # the same dropout and stochastic-depth draws in both layouts
    outputs = model.forward_train(images)
    loss = F.cross_entropy(outputs["out"], labels)
    if outputs["aux"] is not None:
        loss = loss + 0.4 * F.cross_entropy(outputs["aux"], labels)
    loss.backward()
    optimizer.step()
    return loss.detach()


@pytest.mark.parametrize("name", CHANNELS_LAST)
def test_channels_last_trains_and_infers_as_the_contiguous_layout(name):
    torch.manual_seed(0)
    contiguous = build_model(name, NUM_CLASSES).double().train()
    channels_last = copy.deepcopy(contiguous).to(memory_format=torch.channels_last)
    images = torch.randn(2, 3, *SMALL_ODD_SIZE, dtype=torch.float64)
    labels = torch.randint(0, NUM_CLASSES, (2, *SMALL_ODD_SIZE))

    loss = one_training_step(contiguous, images, labels)
    loss_channels_last = one_training_step(channels_last, images.contiguous(memory_format=torch.channels_last), labels)

    assert next(p for p in channels_last.parameters() if p.dim() == 4).is_contiguous(memory_format=torch.channels_last)
    probe = copy.deepcopy(channels_last)  # a training forward updates BatchNorm statistics: not on the compared one
    assert probe.forward_train(images.contiguous(memory_format=torch.channels_last))["out"].is_contiguous()
    assert_close_relative(loss_channels_last, loss, "loss", FLOAT64_TOLERANCE)
    gradient_scale = max(parameter.grad.abs().max().item() for parameter in contiguous.parameters())
    weight_scale = max(parameter.abs().max().item() for parameter in contiguous.parameters())
    pairs = zip(contiguous.named_parameters(), channels_last.parameters(), strict=True)
    for (parameter_name, parameter), parameter_channels_last in pairs:
        assert_close_relative(parameter_channels_last.grad, parameter.grad, f"gradient of {parameter_name}",
                              FLOAT64_TOLERANCE, gradient_scale)
        assert_close_relative(parameter_channels_last, parameter, f"updated {parameter_name}", FLOAT64_TOLERANCE,
                              weight_scale)
    contiguous.float().eval()
    channels_last.float().eval()
    with torch.no_grad():
        logits = contiguous(images[:1].float())
        logits_channels_last = channels_last(images[:1].float().contiguous(memory_format=torch.channels_last))
    assert_close_relative(logits_channels_last, logits, "eval logits", FLOAT32_TOLERANCE)


def test_a_run_trains_in_the_format_it_asks_for_and_its_checkpoint_loads_in_the_other(tiny_config, tmp_path):
    config = tiny_config(iters=2, memory_format="channels_last")
    train(config, output_dir=tmp_path)
    loaded = load_trained_model(tmp_path / CHECKPOINT_LAST, torch.device("cpu"))
    weight = next(p for p in loaded.model.parameters() if p.dim() == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last)

    state = torch.load(tmp_path / CHECKPOINT_LAST, weights_only=False)
    state["config"]["memory_format"] = "contiguous"
    torch.save(state, tmp_path / "contiguous.pt")
    contiguous = load_trained_model(tmp_path / "contiguous.pt", torch.device("cpu"))
    image = torch.randn(1, 3, 32, 32)
    logits = predict_logits(loaded.model, image, Inference.from_config(loaded.config, image.device))
    logits_contiguous = predict_logits(contiguous.model, image, Inference.from_config(contiguous.config, image.device))
    assert_close_relative(logits, logits_contiguous, "logits of the two layouts", FLOAT32_TOLERANCE)


def test_configs_saved_before_the_memory_format_and_compile_settings_load_as_they_were_trained():
    assert SAVED_BEFORE_FIELD["memory_format"] == "contiguous" and SAVED_BEFORE_FIELD["compile"] is False
    assert {"memory_format", "compile"} <= RESUMABLE_CHANGES  # speed settings: a resumed run may change them
    config = RunConfig.from_flat({"data": "x"})
    assert (config.device.memory_format, config.device.compile, config.device.amp) == ("auto", False, "auto")


def test_compile_true_compiles_the_networks_of_a_run_and_keeps_the_checkpoint_keys(tiny_config, tmp_path, monkeypatch):
    # Dynamo's graph capture runs for real; the "eager" backend skips only the code generation,
    # which takes minutes on this CPU (bench/architectures.py --compile times it).
    monkeypatch.setattr(engine.models, "COMPILE_BACKEND", "eager")
    compiled_parts = []
    original = torch.nn.Module.compile

    def record(module, *args, **kwargs):
        compiled_parts.append(type(module).__name__)
        return original(module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "compile", record)
    result = train(tiny_config(iters=2, compile=True), output_dir=tmp_path)

    assert result.steps == 2 and result.last is not None
    assert compiled_parts == ["UNetEncoder", "UNetDecoder"]
    state = torch.load(tmp_path / CHECKPOINT_LAST, weights_only=False)
    assert not any("_orig_mod" in key for key in state["method"])
