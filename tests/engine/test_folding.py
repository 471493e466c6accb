"""BatchNorm folded into the convolution before it: an inference copy that computes the same logits."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.evaluation import inference_network
from engine.models import MODELS, build_model
from engine.models.folding import fold_batchnorm

pytestmark = pytest.mark.usefixtures("single_thread")  # the shared 2-core CI machine

NUM_CLASSES = 5
SIZE = (33, 25)
#: float32 logits, relative to the largest: the folded weights round once more than conv then BN.
TOLERANCE = 1e-4


def batchnorms(model: nn.Module) -> int:
    return sum(isinstance(module, nn.BatchNorm2d) for module in model.modules())


@pytest.mark.parametrize("name", MODELS.names())
def test_the_folded_copy_computes_the_same_logits_and_leaves_the_network_alone(name):
    torch.manual_seed(0)
    model = build_model(name, NUM_CLASSES).train()
    with torch.no_grad():  # running statistics away from their (0, 1) start, so that folding has work to do
        model(torch.randn(2, 3, *SIZE) * 3 + 1)
    model.eval()
    keys = list(model.state_dict())
    image = torch.randn(1, 3, *SIZE)

    folded = fold_batchnorm(model)
    with torch.no_grad():
        expected, logits = model(image), folded(image)

    scale = expected.abs().max().item()
    assert (logits - expected).abs().max().item() <= TOLERANCE * scale
    assert list(model.state_dict()) == keys  # the trained network keeps its BatchNorm layers
    if name.startswith(("unet", "pspnet", "deeplabv3plus", "hrnet", "segformer")):
        assert batchnorms(folded) == 0 < batchnorms(model)  # every BatchNorm there follows a convolution


def test_inference_leaves_a_training_network_in_training_mode():
    model = build_model("unet", NUM_CLASSES, base_width=4, depth=2).train()

    with inference_network(model) as network:
        assert not network.training and network is not model

    assert model.training
