"""bench/memory_format.py: both layouts timed for each architecture, next to its declared one."""
from __future__ import annotations

import json

import pytest

from bench.memory_format import main
from engine.models import declared_memory_format
from tests.engine.conftest import single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")  # the shared 2-core CI machine


def test_bench_times_both_layouts_and_shows_the_declared_one(tmp_path, capsys):
    path = tmp_path / "memory_format.json"

    code = main(["--archs", "unet", "--size", "33x47", "--warmup", "0", "--runs", "1", "--model-option", "base_width=4",
                 "--model-option", "depth=2", "--json", str(path)])

    (row,) = json.loads(path.read_text())["rows"]
    assert code == 0
    assert row["declared"] == declared_memory_format("unet")
    for phase in ("train", "infer"):
        assert row[f"{phase}_ms_contiguous"] > 0 and row[f"{phase}_ms_channels_last"] > 0
        assert row[f"{phase}_ratio"] == pytest.approx(row[f"{phase}_ms_channels_last"] / row[f"{phase}_ms_contiguous"],
                                                      rel=0.05, abs=0.01)
    assert "| unet |" in capsys.readouterr().out


def test_bench_refuses_a_single_image_batch():
    with pytest.raises(SystemExit):
        main(["--archs", "unet", "--batch", "1"])
