"""bench/reference.py: identical parameter counts and the ours / reference ratios (needs requirements-bench.txt)."""
from __future__ import annotations

import json

import pytest

from tests.engine.conftest import single_thread  # noqa: F401  (fixture)

pytest.importorskip("transformers", reason="bench/reference.py's references come from requirements-bench.txt")
pytestmark = pytest.mark.usefixtures("single_thread")  # the shared 2-core CI machine


def test_the_pairs_have_identical_parameter_counts_and_ratios(tmp_path):
    from bench.reference import main

    path = tmp_path / "reference.json"
    assert main(["--size", "32x32", "--warmup", "0", "--runs", "1", "--json", str(path)]) == 0

    rows = json.loads(path.read_text())["rows"]
    assert [row["model"] for row in rows] == ["segformer_b0", "resnet50 encoder"]
    for row in rows:
        assert row["params"] == row["reference_params"]
        assert row["train_ratio"] == pytest.approx(row["train_ms"] / row["train_ms_reference"], rel=0.05, abs=0.01)
