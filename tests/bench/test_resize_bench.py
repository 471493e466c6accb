"""bench/resize.py: a training step with the stencil gradient and with PyTorch's, and how far apart they are."""
from __future__ import annotations

import json

import pytest

from bench.resize import main
from engine.models import resize
from tests.engine.conftest import single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")  # the shared 2-core CI machine


def test_bench_times_both_gradients_and_restores_the_setting(tmp_path, capsys):
    path = tmp_path / "resize.json"
    before = resize.STENCIL_DEVICES

    assert main(["--archs", "ddrnet23_slim", "--size", "64x64", "--warmup", "0", "--runs", "1",
                 "--json", str(path)]) == 0

    stored = json.loads(path.read_text())
    (row,) = stored["rows"]
    assert stored["settings"]["host_memory"] == "system"  # a caller's process keeps its allocator
    assert stored["settings"]["amp"] == "off"
    assert row["train_ms_pytorch"] > 0 and row["train_ms_stencil"] > 0
    assert row["ratio"] == pytest.approx(row["train_ms_stencil"] / row["train_ms_pytorch"], rel=0.05, abs=0.01)
    assert 0 < row["gradient_difference"] < 1e-4  # both ran, and they agree to rounding
    assert resize.STENCIL_DEVICES == before
    assert "| ddrnet23_slim |" in capsys.readouterr().out


def test_bench_runs_under_autocast_and_refuses_a_missing_gpu(tmp_path):
    import torch

    path = tmp_path / "resize.json"
    assert main(["--archs", "segformer_b0", "--size", "64x64", "--warmup", "0", "--runs", "1", "--amp", "bf16",
                 "--json", str(path)]) == 0
    (row,) = json.loads(path.read_text())["rows"]
    assert row["gradient_difference"] < 0.1  # bfloat16: both still agree
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            main(["--archs", "segformer_b0", "--device", "cuda"])
