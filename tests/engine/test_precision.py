"""Mixed precision: ``amp=auto`` is bf16 where the GPU has it, fp16 (with a scaler) otherwise, float32 on the CPU."""
from __future__ import annotations

import pytest
import torch

from engine.cli import build_config, build_parser
from engine.config import FIELD_BY_NAME, RunConfig
from engine.evaluation import Inference, amp_dtype

CUDA, CPU = torch.device("cuda"), torch.device("cpu")


@pytest.mark.parametrize("bf16_supported, expected", [(True, torch.bfloat16), (False, torch.float16)])
def test_auto_picks_bf16_where_the_gpu_supports_it_and_fp16_elsewhere(monkeypatch, bf16_supported, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16_supported)

    assert amp_dtype("auto", CUDA) == expected


@pytest.mark.parametrize("amp, expected", [("off", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_an_explicit_choice_is_kept_on_cuda(monkeypatch, amp, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)

    assert amp_dtype(amp, CUDA) == expected


@pytest.mark.parametrize("amp", FIELD_BY_NAME["amp"].option.choices)
def test_the_cpu_always_computes_in_float32(amp):
    assert amp_dtype(amp, CPU) is None


def test_auto_is_the_default_for_training_and_evaluation(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    config = RunConfig.from_flat({"data": "x"})

    assert config.device.amp == "auto"
    assert Inference.from_config(config, CUDA).amp_dtype == torch.float16  # evaluation, and the trainer's autocast
    assert Inference.from_config(config, CPU).amp_dtype is None


def test_the_cli_turns_mixed_precision_off_for_training_and_evaluation():
    train_args = build_parser().parse_args(["train", "--data", "x", "--amp", "off"])
    eval_args = build_parser().parse_args(["eval", "--checkpoint", "best.pt", "--amp", "off"])

    assert build_config(train_args).device.amp == "off"
    assert eval_args.amp == "off"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--checkpoint", "best.pt", "--amp", "fp8"])
