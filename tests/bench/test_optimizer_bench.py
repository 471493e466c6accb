"""bench/optimizer.py: the three implementations of each optimizer timed on the same parameters."""
from __future__ import annotations

import json

import pytest
import torch

from bench.optimizer import main
from tests.engine.conftest import single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")


def test_bench_times_loop_foreach_and_fused_and_reports_how_far_fused_rounds(tmp_path, capsys):
    path = tmp_path / "optimizer.json"

    assert main(["--archs", "ddrnet23_slim", "--runs", "1", "--json", str(path)]) == 0

    rows = json.loads(path.read_text())["rows"]
    assert [row["optimizer"] for row in rows] == ["sgd", "adamw"]
    for row in rows:
        assert row["params"] > 5_000_000 and min(row["loop_ms"], row["foreach_ms"], row["fused_ms"]) > 0
        assert row["ratio"] == pytest.approx(row["fused_ms"] / row["loop_ms"], rel=0.05, abs=0.01)
        assert 0 <= float(row["max_diff"]) < 1e-5  # rounding, not a different update
    assert "| ddrnet23_slim | adamw |" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_is_refused_where_there_is_none():
    with pytest.raises(SystemExit, match="no CUDA device"):
        main(["--device", "cuda"])
