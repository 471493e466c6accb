"""bench/architectures.py: the table, the JSON rows and the FLOP convention (multiply-accumulates)."""
from __future__ import annotations

import json

import pytest

from bench.architectures import count_gmacs, main
from tests.engine.conftest import single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")  # the shared 2-core CI machine

#: DDRNet-23-slim at 1024x2048 (Hong et al. 2021): 36.3 GFLOPs, counted as multiply-accumulates.
DDRNET23_SLIM_CITYSCAPES_GFLOPS = 36.3


def test_ddrnet23_slim_gflops_at_cityscapes_size_match_the_paper():
    assert count_gmacs("ddrnet23_slim", 19, (1024, 2048)) == pytest.approx(DDRNET23_SLIM_CITYSCAPES_GFLOPS, rel=0.05)


def test_bench_prints_a_table_and_writes_json_rows(tmp_path, capsys):
    path = tmp_path / "bench.json"

    code = main(["--archs", "ddrnet23_slim", "segformer_b0", "--size", "33x47", "--warmup", "0", "--runs", "1",
                 "--json", str(path)])

    report = json.loads(path.read_text())
    printed = capsys.readouterr().out
    assert code == 0
    assert [row["arch"] for row in report["rows"]] == ["ddrnet23_slim", "segformer_b0"]
    assert report["settings"]["size"] == [33, 47]
    for row in report["rows"]:
        assert row["params_m"] > 0 and row["gflops"] > 0 and row["train_img_s"] > 0 and row["infer_fps"] > 0
        assert f"| {row['arch']} |" in printed


def test_no_train_times_inference_alone(tmp_path, capsys):
    path = tmp_path / "bench.json"

    assert main(["--archs", "ddrnet23_slim", "--size", "33x47", "--warmup", "0", "--runs", "1", "--no-train",
                 "--json", str(path)]) == 0

    (row,) = json.loads(path.read_text())["rows"]
    assert row["infer_fps"] > 0 and "train_img_s" not in row
    assert "train img/s" not in capsys.readouterr().out


def test_bench_refuses_an_unknown_architecture_with_the_valid_names():
    with pytest.raises(KeyError, match="ddrnet23_slim"):
        main(["--archs", "ddrnet99", "--size", "32x32"])


def test_bench_refuses_a_malformed_size():
    with pytest.raises(SystemExit):
        main(["--size", "512by1024"])
