"""backbone_weights: foreign ImageNet checkpoint layouts load strictly, without any download."""
from __future__ import annotations

import pytest
import torch

from engine.models import build_model, list_models
from engine.models.pretrained import BACKBONE_SOURCES, DATA_PARALLEL_PREFIX, foreign_state_dict
from engine.models.weights import WeightsError

pytestmark = pytest.mark.usefixtures("single_thread")  # the shared 2-core CI machine

NUM_CLASSES = 3


def smallest_architecture(family: str) -> str:
    members = [entry for entry in list_models() if entry["family"] == family]
    return min(members, key=lambda entry: entry["parameters"])["name"]


def foreign_checkpoint(name: str, family: str, path, data_parallel: bool = False) -> dict[str, torch.Tensor]:
    """Write our randomly initialised encoder in the foreign layout, with a classification head."""
    torch.manual_seed(1)
    source = build_model(name, NUM_CLASSES)
    state = foreign_state_dict(source, family)
    for prefix in BACKBONE_SOURCES[family].head_prefixes:
        state[prefix + "weight"] = torch.zeros(1000, 8)
    if data_parallel:
        state = {DATA_PARALLEL_PREFIX + key: value for key, value in state.items()}
    torch.save(state, path)
    return source.encoder.state_dict()


@pytest.mark.parametrize("family", sorted(BACKBONE_SOURCES))
def test_foreign_checkpoint_loads_into_the_encoder(family, tmp_path):
    name = smallest_architecture(family)
    path = tmp_path / "imagenet.pth"
    expected = foreign_checkpoint(name, family, path)

    model = build_model(name, NUM_CLASSES, backbone_weights=str(path))

    loaded = model.encoder.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[key], expected[key]) for key in expected)


def test_data_parallel_wrapping_and_old_batchnorm_buffers_are_accepted(tmp_path):
    path = tmp_path / "ddrnet.pth"
    expected = foreign_checkpoint("ddrnet23_slim", "DDRNet", path, data_parallel=True)
    state = torch.load(path, weights_only=True)
    torch.save({"state_dict": {key: value for key, value in state.items() if not key.endswith("num_batches_tracked")}},
               path)

    model = build_model("ddrnet23_slim", NUM_CLASSES, backbone_weights=str(path))

    assert torch.equal(model.encoder.state_dict()["layer5.0.conv3.weight"], expected["layer5.0.conv3.weight"])


def test_wrong_checkpoint_lists_missing_and_unexpected_keys(tmp_path):
    path = tmp_path / "hrnet.pth"
    foreign_checkpoint("hrnetv2_w18_small", "HRNetV2", path)

    with pytest.raises(WeightsError) as error:
        build_model("ddrnet23_slim", NUM_CLASSES, backbone_weights=str(path))

    message = str(error.value)
    assert "missing keys" in message and "unexpected keys" in message
    assert "missing keys: compression3.0.weight" in message  # a DDRNet key the HRNet file lacks
    assert "unexpected keys: bn1.bias" in message  # an HRNet key DDRNet has no place for
    assert "official DDRNet ImageNet checkpoint" in message


def test_checkpoint_of_another_depth_reports_shape_or_key_mismatch(tmp_path):
    path = tmp_path / "segformer_b1.pth"
    foreign_checkpoint("segformer_b1", "SegFormer", path)

    with pytest.raises(WeightsError, match="shape mismatches"):
        build_model("segformer_b0", NUM_CLASSES, backbone_weights=str(path))


def test_family_without_a_known_checkpoint_format_says_which_ones_work(tmp_path):
    path = tmp_path / "any.pth"
    torch.save({}, path)

    with pytest.raises(WeightsError, match="backbone_weights works for: PSPNet"):
        build_model("unet", NUM_CLASSES, backbone_weights=str(path))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        build_model("segformer_b0", NUM_CLASSES, backbone_weights=str(tmp_path / "nope.pth"))


# Key names and shapes of the original checkpoints (torchvision resnet50: 320 keys with "fc.";
# HRNet-Image-Classification; ydhongHIT/DDRNet; NVlabs mit_b0), checked on our encoders.
FOREIGN_LAYOUT = {
    "deeplabv3plus_r50": {
        "conv1.weight": (64, 3, 7, 7),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer3.5.bn3.running_var": (1024,),
        "layer4.2.conv3.weight": (2048, 512, 1, 1),
    },
    "hrnetv2_w18_small": {
        "conv2.weight": (64, 64, 3, 3),
        "layer1.1.conv3.weight": (256, 64, 1, 1),
        "transition1.0.0.weight": (18, 256, 3, 3),
        "transition1.1.0.0.weight": (36, 256, 3, 3),
        "transition3.3.0.0.weight": (144, 72, 3, 3),
        "stage2.0.fuse_layers.0.1.0.weight": (18, 36, 1, 1),
        "stage4.1.fuse_layers.3.0.1.0.weight": (18, 18, 3, 3),
        "stage4.1.fuse_layers.3.0.2.0.weight": (144, 18, 3, 3),
    },
    "ddrnet23_slim": {
        "conv1.0.bias": (32,),
        "conv1.4.weight": (32,),
        "layer3_.0.conv1.weight": (64, 64, 3, 3),
        "compression3.0.weight": (64, 128, 1, 1),
        "down4.3.weight": (256, 128, 3, 3),
        "layer5_.0.downsample.0.weight": (128, 64, 1, 1),
        "layer5.0.conv3.weight": (512, 256, 1, 1),
    },
    "segformer_b0": {
        "patch_embed1.proj.weight": (32, 3, 7, 7),
        "block1.0.attn.sr.weight": (32, 32, 8, 8),
        "block1.1.mlp.dwconv.dwconv.weight": (128, 1, 3, 3),
        "block4.1.attn.kv.weight": (512, 256),
        "norm4.weight": (256,),
    },
}


@pytest.mark.parametrize("name", sorted(FOREIGN_LAYOUT))
def test_encoder_keys_follow_the_original_checkpoints(name):
    family = next(entry["family"] for entry in list_models() if entry["name"] == name)
    with torch.device("meta"):
        model = build_model(name, NUM_CLASSES)

    state = foreign_state_dict(model, family)

    assert {key: tuple(state[key].shape) for key in FOREIGN_LAYOUT[name]} == FOREIGN_LAYOUT[name]


def test_resnet50_encoder_has_torchvisions_318_keys_without_fc():
    with torch.device("meta"):
        model = build_model("pspnet_r50", NUM_CLASSES)

    assert len(foreign_state_dict(model, "PSPNet")) == 318
