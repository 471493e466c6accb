"""Registry-driven tests of every architecture: a newly registered one is covered with no new code."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.models import MODELS, build_model, count_parameters, list_models
from engine.models.layers import upsample_to
from engine.options import clean_options

pytestmark = pytest.mark.usefixtures("single_thread")  # the shared 2-core CI machine

ARCHITECTURES = [entry["name"] for entry in list_models()]
NUM_CLASSES = 5
ODD_SIZE = (65, 47)  # not a multiple of any output stride

#: Published parameter counts (millions) at 19 classes, inference model (no auxiliary head).
PAPER_PARAMETERS = {
    "ddrnet23_slim": 5.7,  # Hong et al. 2021 (Cityscapes comparison)
    "ddrnet23": 20.1,
    "ddrnet39": 32.3,
    "hrnetv2_w18_small": 3.9,  # HRNet-Semantic-Segmentation model zoo (Cityscapes)
    "hrnetv2_w48": 65.9,
    "segformer_b0": 3.8,  # Xie et al. 2021
    "segformer_b1": 13.7,
    "segformer_b2": 27.5,
}
#: Encoder-only counts: DeiT-Ti / DeiT-S (Touvron et al. 2021).
PAPER_ENCODER_PARAMETERS = {"setr_vit_tiny": 5.7, "setr_vit_small": 22.0}
TOLERANCE = 0.03


def build_on_meta(name: str, num_classes: int = 19, **options) -> nn.Module:
    entry = MODELS.get(name)
    with torch.device("meta"):
        return entry.factory(num_classes=num_classes, **clean_options(entry.options, options))


def inference_parameters(model: nn.Module) -> int:
    aux = count_parameters(model.aux_decoder) if model.aux_decoder is not None else 0
    return count_parameters(model) - aux


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_forward_and_backward_give_finite_logits_at_input_size_in_train_and_eval(name):
    torch.manual_seed(0)
    model = build_model(name, NUM_CLASSES).train()
    images = torch.randn(2, 3, *ODD_SIZE)

    outputs = model.forward_train(images)
    loss = outputs["out"].logsumexp(1).mean()
    if outputs["aux"] is not None:
        loss = loss + outputs["aux"].logsumexp(1).mean()
    loss.backward()
    model.eval()
    with torch.no_grad():
        logits = model(images[:1, :, :33, :17])
        eval_outputs = model.forward_train(images[:1])

    assert set(outputs) == {"out", "aux", "features"}
    assert outputs["out"].shape == (2, NUM_CLASSES, *ODD_SIZE)
    assert torch.isfinite(outputs["out"]).all()
    assert (outputs["aux"] is None) == (model.aux_decoder is None)
    if outputs["aux"] is not None:
        assert outputs["aux"].shape == (2, NUM_CLASSES, *ODD_SIZE)
    without_gradient = [key for key, parameter in model.named_parameters() if parameter.grad is None]
    assert without_gradient == [], "parameters not reached by the loss"
    assert all(torch.isfinite(parameter.grad).all() for parameter in model.parameters())
    assert logits.shape == (1, NUM_CLASSES, 33, 17)
    assert torch.isfinite(logits).all()
    assert eval_outputs["aux"] is None
    assert eval_outputs["out"].shape == (1, NUM_CLASSES, *ODD_SIZE)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_perturbed_features_are_decoded_in_the_clean_decoder_batch(name):
    torch.manual_seed(0)
    model = build_model(name, NUM_CLASSES).train()
    images = torch.randn(2, 3, 64, 64)
    batch_sizes = []
    model.decoder.register_forward_pre_hook(lambda module, args: batch_sizes.append(len(args[0][0])))

    outputs = model.forward_train(images, perturb=torch.zeros_like)
    model.eval()
    with torch.no_grad():
        clean, zeros = model(images), model.decode([torch.zeros_like(f) for f in model.encoder(images)], (64, 64))
        evaluated = model.forward_train(images, perturb=torch.zeros_like)

    assert batch_sizes[0] == 4, "one decoder pass over clean and perturbed features (UniMatch's need_fp)"
    assert outputs["out"].shape == outputs["out_fp"].shape == (2, NUM_CLASSES, 64, 64)
    assert torch.allclose(evaluated["out"], clean, atol=1e-5)
    assert torch.allclose(evaluated["out_fp"], zeros, atol=1e-5)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_encoder_features_go_from_high_to_low_resolution(name):
    model = build_on_meta(name).eval()

    features = model.encoder(torch.empty(1, 3, 256, 512, device="meta"))

    heights = [feature.shape[-2] for feature in features]
    assert heights == sorted(heights, reverse=True)


#: (channels, stride) of each encoder feature, as the module docstrings state.
DOCUMENTED_FEATURES = {
    "pspnet_r50": [(256, 4), (512, 8), (1024, 8), (2048, 8)],
    "deeplabv3plus_r101": [(256, 4), (512, 8), (1024, 16), (2048, 16)],
    "hrnetv2_w48": [(48, 4), (96, 8), (192, 16), (384, 32)],
    "hrnetv2_w18_small": [(18, 4), (36, 8), (72, 16), (144, 32)],
    "ddrnet23_slim": [(64, 8), (128, 8), (512, 64)],
    "ddrnet39": [(128, 8), (256, 8), (1024, 64)],
    "segformer_b0": [(32, 4), (64, 8), (160, 16), (256, 32)],
    "segformer_b2": [(64, 4), (128, 8), (320, 16), (512, 32)],
    "setr_vit_small": [(384, 16)],
    "unet": [(32, 1), (64, 2), (128, 4), (256, 8), (512, 16)],
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED_FEATURES))
def test_encoder_features_have_documented_channels_and_strides(name):
    model = build_on_meta(name).eval()

    features = model.encoder(torch.empty(1, 3, 512, 1024, device="meta"))

    assert [(feature.shape[1], 512 // feature.shape[2]) for feature in features] == DOCUMENTED_FEATURES[name]
    assert [1024 // feature.shape[3] for feature in features] == [stride for _, stride in DOCUMENTED_FEATURES[name]]


@pytest.mark.parametrize("name", sorted(PAPER_PARAMETERS))
def test_parameter_count_matches_the_paper(name):
    model = build_on_meta(name)

    millions = inference_parameters(model) / 1e6

    assert millions == pytest.approx(PAPER_PARAMETERS[name], rel=TOLERANCE)


@pytest.mark.parametrize("name", sorted(PAPER_ENCODER_PARAMETERS))
def test_vit_encoder_parameter_count_matches_deit(name):
    model = build_on_meta(name)

    assert count_parameters(model.encoder) / 1e6 == pytest.approx(PAPER_ENCODER_PARAMETERS[name], rel=TOLERANCE)


def test_catalogue_describes_every_architecture():
    catalogue = list_models()

    assert [entry["name"] for entry in catalogue] == MODELS.names()
    for entry in catalogue:
        assert {"name", "family", "paper", "options", "parameters", "backbone_weights"} <= set(entry)
        assert entry["parameters"] > 0
        assert "arXiv" in entry["paper"]
        for option in entry["options"]:
            assert option["help"] and "default" in option


def test_deeplab_output_stride_8_dilates_layer3_and_doubles_aspp_rates():
    model = build_on_meta("deeplabv3plus_r50", output_stride=8)

    features = model.encoder(torch.empty(1, 3, 512, 512, device="meta"))
    rates = [branch[0].dilation[0] for branch in model.decoder.aspp.branches[1:-1]]

    assert [512 // feature.shape[-1] for feature in features] == [4, 8, 8, 8]
    assert rates == [12, 24, 36]
    branches = build_on_meta("deeplabv3plus_r50").decoder.aspp.branches
    assert [branch[0].dilation[0] for branch in branches[1:-1]] == [6, 12, 18]


def test_deeplab_decoder_fuses_48_channel_low_level_features():
    decoder = build_on_meta("deeplabv3plus_r50").decoder

    assert decoder.reduce_low_level[0].out_channels == 48
    assert decoder.fuse[0][0].in_channels == 256 + 48


def test_pspnet_pools_bins_1_2_3_6_and_supervises_layer3():
    model = build_on_meta("pspnet_r50")

    bins = [stage[0].output_size for stage in model.decoder.pyramid.stages]

    assert bins == [1, 2, 3, 6]
    assert model.aux_decoder.index == 2
    assert model.aux_decoder.block[0].in_channels == 1024


def test_segformer_decoder_width_follows_the_paper():
    widths = {name: build_on_meta(name).decoder.linear_pred.in_channels
              for name in ("segformer_b0", "segformer_b1", "segformer_b2")}

    assert widths == {"segformer_b0": 256, "segformer_b1": 256, "segformer_b2": 768}


def test_segformer_attention_reduces_keys_by_8_4_2_1():
    encoder = build_on_meta("segformer_b0").encoder

    ratios = [getattr(encoder, f"block{stage}")[0].attn.reduction_ratio for stage in range(1, 5)]

    assert ratios == [8, 4, 2, 1]


def test_setr_position_embeddings_follow_the_input_grid():
    model = build_model("setr_vit_tiny", NUM_CLASSES, pos_grid=4).eval()

    with torch.no_grad():
        features = model.encoder(torch.randn(1, 3, 100, 40))

    assert features[0].shape == (1, 192, 7, 3)


def test_unknown_architecture_lists_valid_names():
    with pytest.raises(KeyError, match="segformer_b0"):
        build_model("segformer_b9", NUM_CLASSES)


def _official_segformer_decoder(decoder: nn.Module, features: list[torch.Tensor]) -> torch.Tensor:
    """NVlabs' ``SegFormerHead.forward``: project, upsample, concatenate (coarsest first), fuse."""
    unified = []
    for linear, feature in zip(decoder.linear_c, features, strict=True):
        projected = linear(feature.flatten(2).transpose(1, 2)).transpose(1, 2)
        unified.append(upsample_to(projected.reshape(feature.shape[0], -1, *feature.shape[-2:]), features[0]))
    return decoder.linear_pred(decoder.dropout(decoder.linear_fuse(torch.cat(unified[::-1], dim=1))))


def _official_hrnet_head(head: nn.Module, features: list[torch.Tensor]) -> torch.Tensor:
    """HRNet-Semantic-Segmentation's head: upsample every branch, concatenate, ``last_layer``."""
    return head.last_layer(torch.cat([upsample_to(feature, features[0]) for feature in features], dim=1))


@pytest.mark.parametrize("name, official", [("segformer_b0", _official_segformer_decoder),
                                            ("hrnetv2_w18_small", _official_hrnet_head)])
def test_reassociated_heads_compute_the_official_function_and_gradients(name, official):
    torch.manual_seed(0)
    model = build_model(name, NUM_CLASSES).train()
    features = [feature.detach().requires_grad_() for feature in model.encoder(torch.randn(2, 3, *ODD_SIZE))]
    weights = torch.randn(2, NUM_CLASSES, *features[0].shape[-2:])  # a loss that weighs every logit differently

    gradients = []
    for decode in (model.decoder, lambda features: official(model.decoder, features)):
        torch.manual_seed(1)  # the same dropout draws
        logits = decode(features)
        parameters = [*model.decoder.parameters(), *features]
        gradients.append((logits, torch.autograd.grad((logits * weights).sum(), parameters)))

    (ours, our_gradients), (theirs, their_gradients) = gradients
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    # Biases before a training-mode BatchNorm get zero gradients, up to rounding: compare at the gradients' scale.
    scale = max(reference.abs().max().item() for reference in their_gradients)
    for mine, reference in zip(our_gradients, their_gradients, strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_predicted_classes_are_argmax_ties_included(memory_format):
    from engine.models import predicted_classes

    torch.manual_seed(0)
    scores = torch.randint(0, 3, (2, 19, 17, 23)).float().contiguous(memory_format=memory_format)  # many ties
    assert torch.equal(predicted_classes(scores), scores.argmax(1))
    assert torch.equal(predicted_classes(scores, 0), scores.argmax(0))
    scores = torch.randn(1, 2, 8, 8).contiguous(memory_format=memory_format)
    assert torch.equal(predicted_classes(scores), scores.argmax(1))
