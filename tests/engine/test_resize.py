"""engine.models.resize: the stencil gradient of whole-number bilinear upscales equals PyTorch's."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.models import build_model
from engine.models.resize import _BilinearUpscale, bilinear_resize


def _reference(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


@pytest.mark.parametrize(("shape", "size"), [
    ((2, 19, 32, 32), (256, 256)),   # DDRNet's logits at 1/8
    ((2, 5, 16, 24), (64, 96)),      # 1/4, not square
    ((1, 3, 7, 5), (21, 10)),        # odd input sides, scale 3 and 2
    ((1, 2, 1, 4), (5, 4)),          # a single row; the width unchanged
    ((3, 1, 2, 2), (2, 14)),         # scale 1 on one axis, 7 on the other
])
def test_values_and_gradient_match_pytorch(shape: tuple[int, ...], size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    grad = torch.randn(shape[0], shape[1], *size)
    ours = bilinear_resize(x, size)
    assert ours.grad_fn is not None and "BilinearUpscale" in type(ours.grad_fn).__name__  # the stencil path ran
    (ours_grad,) = torch.autograd.grad(ours, x, grad)
    theirs = _reference(x, size)
    (theirs_grad,) = torch.autograd.grad(theirs, x, grad)
    assert torch.equal(ours, theirs)  # the forward is PyTorch's kernel
    torch.testing.assert_close(ours_grad, theirs_grad, rtol=1e-5, atol=1e-5)


def test_gradient_passes_gradcheck_in_double() -> None:
    x = torch.randn(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _BilinearUpscale.apply(t, (12, 8)), (x,))


@pytest.mark.parametrize(("shape", "size", "memory_format"), [
    ((2, 4, 6, 6), (16, 16), torch.contiguous_format),       # 16 / 6: not a whole multiple
    ((2, 4, 16, 16), (8, 8), torch.contiguous_format),       # downscale
    ((2, 8, 4, 4), (16, 16), torch.channels_last),           # PyTorch's channels_last kernel is the fast one
])
def test_other_resizes_keep_pytorch_gradient(shape: tuple[int, ...], size: tuple[int, int],
                                              memory_format: torch.memory_format) -> None:
    x = torch.randn(*shape).contiguous(memory_format=memory_format).requires_grad_()
    ours = bilinear_resize(x, size)
    assert "BilinearUpscale" not in type(ours.grad_fn).__name__
    grad = torch.randn_like(ours)
    torch.testing.assert_close(torch.autograd.grad(ours, x, grad)[0],
                               torch.autograd.grad(_reference(x, size), x, grad)[0])


def test_equal_size_is_the_input_itself() -> None:
    x = torch.randn(1, 2, 8, 8, requires_grad=True)
    assert bilinear_resize(x, (8, 8)) is x


def test_training_step_gradients_match_pytorch_resize(monkeypatch: pytest.MonkeyPatch) -> None:
    """A DDRNet training step (two logit heads at 1/8) gives PyTorch's parameter gradients."""
    torch.manual_seed(0)
    model = build_model("ddrnet23_slim", 4).train()
    images, labels = torch.randn(2, 3, 64, 64), torch.randint(0, 4, (2, 64, 64))

    def gradients() -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        outputs = model.forward_train(images)
        (F.cross_entropy(outputs["out"], labels) + 0.4 * F.cross_entropy(outputs["aux"], labels)).backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    state = {k: v.clone() for k, v in model.state_dict().items()}
    ours = gradients()
    model.load_state_dict(state)  # the BatchNorm running statistics moved; put them back
    monkeypatch.setattr("engine.models.resize.STENCIL_DEVICES", frozenset())
    theirs = gradients()
    assert ours.keys() == theirs.keys()
    largest = max(grad.norm().item() for grad in theirs.values())
    for name in ours:  # relative, with a floor: a convolution bias before BatchNorm has a zero gradient up to rounding
        difference = (ours[name] - theirs[name]).norm().item()
        assert difference <= 1e-4 * theirs[name].norm().item() + 1e-5 * largest, (name, difference)


def test_the_setting_names_a_malformed_value(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.models.resize import stencil_devices

    monkeypatch.setenv("SEGLAB_RESIZE_GRADIENT", "PyTorch ")
    assert stencil_devices() == frozenset()
    monkeypatch.delenv("SEGLAB_RESIZE_GRADIENT")
    assert stencil_devices() == frozenset({"cpu"})
    monkeypatch.setenv("SEGLAB_RESIZE_GRADIENT", "fast")
    with pytest.raises(ValueError, match=r"SEGLAB_RESIZE_GRADIENT='fast': expected one of stencil, pytorch"):
        stencil_devices()


def test_pinned_kernels_refuse_an_engine_imported_with_the_stencil(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.kernels import check

    monkeypatch.setattr("torch.backends.cpu.get_cpu_capability", lambda: "AVX2")
    monkeypatch.setattr("engine.models.resize.STENCIL_DEVICES", frozenset({"cpu"}))
    with pytest.raises(RuntimeError, match="SEGLAB_RESIZE_GRADIENT=pytorch"):
        check("avx2")
    monkeypatch.setattr("engine.models.resize.STENCIL_DEVICES", frozenset())
    check("avx2")
    check("native")


def test_gradient_under_cpu_autocast_has_the_input_dtype() -> None:
    x = torch.randn(1, 2, 4, 4, dtype=torch.bfloat16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = bilinear_resize(x, (8, 8))
    out.float().sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16
    torch.testing.assert_close(x.grad.float(), torch.full((1, 2, 4, 4), 4.0))  # each input feeds 4 outputs' worth


def test_an_empty_side_is_left_to_pytorch() -> None:
    x = torch.randn(1, 2, 0, 4, requires_grad=True)
    with pytest.raises(RuntimeError):  # PyTorch's own message for an empty input, not a ZeroDivisionError
        bilinear_resize(x, (8, 8))
