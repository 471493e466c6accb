"""bench/host_memory.py: each setting measured in its own processes, faults and peak memory beside the times."""
from __future__ import annotations

import json
import platform

import pytest

from bench.host_memory import main
from engine.registry import RegistryError


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting compared is glibc's")
def test_bench_measures_both_settings_in_separate_processes(tmp_path, capsys):
    path = tmp_path / "host_memory.json"

    code = main(["--archs", "ddrnet23_slim", "--size", "64x64", "--runs", "1", "--rounds", "1", "--json", str(path)])

    (row,) = json.loads(path.read_text())["rows"]
    assert code == 0
    for phase in ("train", "infer"):
        assert row[f"{phase}_ms_system"] > 0 and row[f"{phase}_ms_retain"] > 0
        assert row[f"{phase}_faults_system"] >= 0 and row[f"{phase}_faults_retain"] >= 0
        assert row[f"{phase}_ratio"] == pytest.approx(row[f"{phase}_ms_retain"] / row[f"{phase}_ms_system"],
                                                      rel=0.05, abs=0.01)
    assert row["peak_mb_system"] > 0 and row["peak_mb_retain"] > 0
    assert "| ddrnet23_slim |" in capsys.readouterr().out


def test_bench_refuses_an_unknown_architecture_before_measuring():
    with pytest.raises(RegistryError, match="ddrnet23_slim"):  # the message lists the valid names
        main(["--archs", "ddrnet99"])
