"""bench/data.py --versus: the loaders' delivery against the trainer's own step, in the network's layout."""
from __future__ import annotations

import json

import pytest
import torch

from bench import data


@pytest.mark.parametrize("cache", [[], ["--decode-cache"]], ids=["decoding", "decode-cache"])
def test_versus_times_the_step_and_the_loaders_of_a_channels_last_network(tmp_path, monkeypatch, cache):
    monkeypatch.setattr(data, "STEP_HEIGHT", 64)  # Cityscapes' 1024 rows and crop, at a test's size
    monkeypatch.setattr(data, "STEP_CROP", 64)
    monkeypatch.setattr(data, "STEP_BATCH", 2)
    copied = []
    to_device = data.trainer._to_device
    monkeypatch.setattr(data.trainer, "_to_device", lambda batch, device, layout, finish: copied.append(layout)
                        or to_device(batch, device, layout, finish))
    out = tmp_path / "versus.json"

    data.main(["--versus", "ddrnet23_slim", "--images", "4", "--workers", "0", "--batches", "2", "--steps", "1",
               "--json", str(out), *cache])

    result = json.loads(out.read_text())
    assert (result["arch"], result["crop"], result["batch_size"]) == ("ddrnet23_slim", 64, 2)
    assert result["decode_cache"] is bool(cache)
    assert result["step_ms"] > 0
    assert [row["loaders"] for row in result["rows"]] == ["labelled", "unlabelled", "labelled + unlabelled"]
    for row in result["rows"]:
        assert row["batches_per_s"] > 0
        assert row["ratio"] == pytest.approx(row["batches_per_s"] / row["steps_per_s"], rel=0.02)
    assert set(copied) == {torch.channels_last}  # DDRNet declares channels_last: batches arrive in it
